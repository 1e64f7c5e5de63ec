//! The names of the nodes keg makes, as EC2 names them from a private IPv4 address.

use std::net::Ipv4Addr;

/// The node name of a Fargate pod's node, e.g.
/// `fargate-ip-10-0-8-190.eu-west-1.compute.internal`.
pub fn fargate_node_name(ip: Ipv4Addr, region: &str) -> String {
    format!("fargate-{}", ec2_node_name(ip, region))
}

/// The node name of a node group's node, e.g. `ip-10-0-8-190.eu-west-1.compute.internal`.
pub fn ec2_node_name(ip: Ipv4Addr, region: &str) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ip-{a}-{b}-{c}-{d}.{}", private_domain(region))
}

/// EC2's private DNS domain: us-east-1 predates the per-region scheme and keeps `ec2.internal`.
fn private_domain(region: &str) -> String {
    if region == "us-east-1" {
        "ec2.internal".to_owned()
    } else {
        format!("{region}.compute.internal")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_addresses() {
        let cases = [
            (
                [10, 0, 8, 190],
                "us-east-2",
                "fargate-ip-10-0-8-190.us-east-2.compute.internal",
            ),
            (
                [192, 168, 1, 7],
                "eu-west-1",
                "fargate-ip-192-168-1-7.eu-west-1.compute.internal",
            ),
            (
                [10, 1, 2, 3],
                "us-east-1",
                "fargate-ip-10-1-2-3.ec2.internal",
            ),
        ];
        for (octets, region, want) in cases {
            assert_eq!(fargate_node_name(Ipv4Addr::from(octets), region), want);
        }
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(
            ec2_node_name(ip, "eu-west-1"),
            "ip-10-0-0-1.eu-west-1.compute.internal"
        );
    }
}
