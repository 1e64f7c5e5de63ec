//! The EC2 instance types a node group may use, with what each gives a node.
//!
//! vCPU and memory are EC2's published sizes; max pods is EKS's `eni-max-pods.txt` (awslabs
//! amazon-eks-ami, `templates/shared/runtime/eni-max-pods.txt`): the pod count the VPC CNI can
//! address on that type, `ENIs * (IPv4 per ENI - 1) + 2`. keg's pod network has no such limit,
//! but a node reports this capacity so that scheduling behaves as it would on EKS.

/// One EC2 instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceType {
    /// The API name, e.g. `t3.medium`.
    pub name: &'static str,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// EKS's maximum pods per node for this type.
    pub max_pods: u32,
    /// The Kubernetes architecture (`kubernetes.io/arch`) of the type.
    pub arch: &'static str,
}

impl InstanceType {
    /// The instance type called `name`, if keg knows it.
    pub fn lookup(name: &str) -> Option<&'static InstanceType> {
        TABLE.iter().find(|t| t.name == name)
    }

    /// Every instance type keg knows, grouped by family.
    pub fn all() -> &'static [InstanceType] {
        TABLE
    }

    /// Milli-CPUs, as a node's capacity reports them.
    pub fn millicpu(&self) -> u64 {
        u64::from(self.vcpus) * 1000
    }
}

const fn amd64(name: &'static str, vcpus: u32, memory_gib: f64, max_pods: u32) -> InstanceType {
    InstanceType {
        name,
        vcpus,
        memory_mib: (memory_gib * 1024.0) as u64,
        max_pods,
        arch: "amd64",
    }
}

static TABLE: &[InstanceType] = &[
    amd64("t2.nano", 1, 0.5, 4),
    amd64("t2.micro", 1, 1.0, 4),
    amd64("t2.small", 1, 2.0, 11),
    amd64("t2.medium", 2, 4.0, 17),
    amd64("t2.large", 2, 8.0, 35),
    amd64("t2.xlarge", 4, 16.0, 44),
    amd64("t2.2xlarge", 8, 32.0, 44),
    amd64("t3.nano", 2, 0.5, 4),
    amd64("t3.micro", 2, 1.0, 4),
    amd64("t3.small", 2, 2.0, 11),
    amd64("t3.medium", 2, 4.0, 17),
    amd64("t3.large", 2, 8.0, 35),
    amd64("t3.xlarge", 4, 16.0, 58),
    amd64("t3.2xlarge", 8, 32.0, 58),
    amd64("m5.large", 2, 8.0, 29),
    amd64("m5.xlarge", 4, 16.0, 58),
    amd64("m5.2xlarge", 8, 32.0, 58),
    amd64("m5.4xlarge", 16, 64.0, 234),
    amd64("m5.8xlarge", 32, 128.0, 234),
    amd64("m5.12xlarge", 48, 192.0, 234),
    amd64("m5.16xlarge", 64, 256.0, 737),
    amd64("m5.24xlarge", 96, 384.0, 737),
    amd64("m5.metal", 96, 384.0, 737),
    amd64("c5.large", 2, 4.0, 29),
    amd64("c5.xlarge", 4, 8.0, 58),
    amd64("c5.2xlarge", 8, 16.0, 58),
    amd64("c5.4xlarge", 16, 32.0, 234),
    amd64("c5.9xlarge", 36, 72.0, 234),
    amd64("c5.12xlarge", 48, 96.0, 234),
    amd64("c5.18xlarge", 72, 144.0, 737),
    amd64("c5.24xlarge", 96, 192.0, 737),
    amd64("c5.metal", 96, 192.0, 737),
    amd64("r5.large", 2, 16.0, 29),
    amd64("r5.xlarge", 4, 32.0, 58),
    amd64("r5.2xlarge", 8, 64.0, 58),
    amd64("r5.4xlarge", 16, 128.0, 234),
    amd64("r5.8xlarge", 32, 256.0, 234),
    amd64("r5.12xlarge", 48, 384.0, 234),
    amd64("r5.16xlarge", 64, 512.0, 737),
    amd64("r5.24xlarge", 96, 768.0, 737),
    amd64("r5.metal", 96, 768.0, 737),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_known_types() {
        let cases = [
            ("t2.medium", 2, 4096, 17),
            ("t3.medium", 2, 4096, 17),
            ("t2.nano", 1, 512, 4),
            ("m5.large", 2, 8192, 29),
            ("c5.9xlarge", 36, 73728, 234),
            ("r5.metal", 96, 786_432, 737),
        ];
        for (name, vcpus, memory_mib, max_pods) in cases {
            let t = InstanceType::lookup(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(
                (t.vcpus, t.memory_mib, t.max_pods),
                (vcpus, memory_mib, max_pods)
            );
            assert_eq!(t.arch, "amd64");
        }
        assert_eq!(
            InstanceType::lookup("m5.large").map(|t| t.millicpu()),
            Some(2000)
        );
    }

    #[test]
    fn unknown_types_are_none() {
        for name in ["x1.huge", "", "T2.MEDIUM", "t3a.medium"] {
            assert!(InstanceType::lookup(name).is_none(), "{name}");
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = TABLE.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLE.len());
    }
}
