//! keg: serverless Kubernetes in one binary.

fn main() {
    println!("keg");
}
