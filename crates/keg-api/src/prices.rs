//! What compute costs on AWS, so keg can meter what the seed's move to Fargate saves.
//!
//! On-demand Linux prices in USD per hour, as AWS's public price pages (aws.amazon.com/fargate/
//! pricing, aws.amazon.com/ec2/pricing/on-demand) listed them through 2024 and 2025. The us-east-1
//! Fargate rates and t3.medium's prices were checked against third-party copies of those pages
//! in 2025; the other figures are the pages' values as recorded then and not re-checked since.
//! They are a snapshot: refresh them here when AWS moves them. Fargate is Linux/x86; EC2 is
//! shared tenancy, without reservations or savings plans.
//!
//! [`PriceTable`] is what metering uses: these figures, with a user's own prices (a file, see
//! [`overrides`]) laid over them.

pub mod overrides;

use std::collections::BTreeMap;

pub use overrides::{Error, PriceFile};

use crate::fargate::FargateSize;

/// The regions keg has prices for.
pub const REGIONS: &[&str] = &["us-east-1", "eu-west-1"];

/// Where the built-in figures come from, and when; reports print it beside their totals.
pub const SOURCE: &str = "AWS on-demand list prices (aws.amazon.com/fargate/pricing, \
aws.amazon.com/ec2/pricing/on-demand), Linux, as listed in 2024-2025";

/// Fargate's Linux/x86 on-demand rates in one region.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FargateRate {
    /// USD per vCPU per hour.
    pub vcpu_hour: f64,
    /// USD per GB of memory per hour.
    pub gb_hour: f64,
}

/// Fargate's rates in `region`, if keg has them.
pub fn fargate_rate(region: &str) -> Option<FargateRate> {
    match region {
        "us-east-1" => Some(FargateRate {
            vcpu_hour: 0.04048,
            gb_hour: 0.004445,
        }),
        "eu-west-1" => Some(FargateRate {
            vcpu_hour: 0.04456,
            gb_hour: 0.004865,
        }),
        _ => None,
    }
}

/// What a pod of `size` costs an hour on Fargate in `region`.
pub fn fargate_hourly(region: &str, size: &FargateSize) -> Option<f64> {
    let rate = fargate_rate(region)?;
    Some(size.vcpus() * rate.vcpu_hour + size.memory_gb() * rate.gb_hour)
}

/// EBS volume types keg prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EbsVolumeType {
    /// General Purpose SSD, previous generation.
    Gp2,
    /// General Purpose SSD, current generation (baseline IOPS and throughput only).
    Gp3,
}

impl EbsVolumeType {
    /// The type a StorageClass's `type` parameter names (`gp2`, `gp3`), if keg prices it.
    pub fn parse(name: &str) -> Option<EbsVolumeType> {
        match name {
            "gp2" => Some(EbsVolumeType::Gp2),
            "gp3" => Some(EbsVolumeType::Gp3),
            _ => None,
        }
    }
}

/// Hours in the month EBS's per-GB-month prices are prorated over (AWS and OpenCost use 730).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// EBS's provisioned-storage list price in USD per GB-month in `region`: aws.amazon.com/ebs/
/// pricing, as listed in 2024-2025 (us-east-1: gp2 $0.10, gp3 $0.08; eu-west-1: gp2 $0.11,
/// gp3 $0.088). gp3's extra IOPS and throughput above the baseline are not priced.
pub fn ebs_gb_month(region: &str, volume: EbsVolumeType) -> Option<f64> {
    match (region, volume) {
        ("us-east-1", EbsVolumeType::Gp2) => Some(0.10),
        ("us-east-1", EbsVolumeType::Gp3) => Some(0.08),
        ("eu-west-1", EbsVolumeType::Gp2) => Some(0.11),
        ("eu-west-1", EbsVolumeType::Gp3) => Some(0.088),
        _ => None,
    }
}

/// What a volume of `gb` GB of `volume` costs an hour in `region` (its GB-month price over
/// [`HOURS_PER_MONTH`]).
pub fn ebs_hourly(region: &str, volume: EbsVolumeType, gb: f64) -> Option<f64> {
    Some(ebs_gb_month(region, volume)? * gb / HOURS_PER_MONTH)
}

/// What an instance of `instance_type` costs an hour on demand in `region`.
pub fn ec2_hourly(region: &str, instance_type: &str) -> Option<f64> {
    let column = REGIONS.iter().position(|r| *r == region)?;
    EC2.iter()
        .find(|(name, _)| *name == instance_type)
        .map(|(_, prices)| prices[column])
}

/// The prices of one region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionPrices {
    /// Fargate's rates, if known.
    pub fargate: Option<FargateRate>,
    /// On-demand hourly prices by instance type.
    pub ec2: BTreeMap<String, f64>,
}

/// Prices by region: the built-in figures, possibly with a user's own over them.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    regions: BTreeMap<String, RegionPrices>,
    source: String,
}

impl PriceTable {
    /// The built-in AWS figures (see the module's documentation for their source and date).
    pub fn aws() -> PriceTable {
        let regions = REGIONS
            .iter()
            .enumerate()
            .map(|(column, region)| {
                let prices = RegionPrices {
                    fargate: fargate_rate(region),
                    ec2: EC2
                        .iter()
                        .map(|(name, prices)| ((*name).to_owned(), prices[column]))
                        .collect(),
                };
                ((*region).to_owned(), prices)
            })
            .collect();
        PriceTable {
            regions,
            source: SOURCE.to_owned(),
        }
    }

    /// The built-in figures with those of the price file at `path` laid over them.
    pub fn load(path: &std::path::Path) -> Result<PriceTable, Error> {
        Ok(PriceTable::aws().with(&PriceFile::read(path)?))
    }

    /// This table with `file`'s prices taking precedence, region by region and type by type.
    pub fn with(mut self, file: &PriceFile) -> PriceTable {
        for (region, prices) in &file.regions {
            let entry = self.regions.entry(region.clone()).or_default();
            if let Some(rate) = prices.fargate {
                entry.fargate = Some(rate);
            }
            entry
                .ec2
                .extend(prices.ec2.iter().map(|(k, v)| (k.clone(), *v)));
        }
        if let Some(source) = &file.source {
            self.source = format!("{source}; otherwise {}", self.source);
        }
        self
    }

    /// Where the figures come from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The regions with any prices.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.keys().map(String::as_str)
    }

    /// Fargate's rates in `region`.
    pub fn fargate(&self, region: &str) -> Option<FargateRate> {
        self.regions.get(region)?.fargate
    }

    /// What a pod of `size` costs an hour on Fargate in `region`.
    pub fn fargate_hourly(&self, region: &str, size: &FargateSize) -> Option<f64> {
        let rate = self.fargate(region)?;
        Some(size.vcpus() * rate.vcpu_hour + size.memory_gb() * rate.gb_hour)
    }

    /// What an instance of `instance_type` costs an hour on demand in `region`.
    pub fn ec2_hourly(&self, region: &str, instance_type: &str) -> Option<f64> {
        self.regions.get(region)?.ec2.get(instance_type).copied()
    }
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::aws()
    }
}

/// Per instance type, the hourly price in each of [`REGIONS`], in that order.
static EC2: &[(&str, [f64; 2])] = &[
    ("t2.nano", [0.0058, 0.0063]),
    ("t2.micro", [0.0116, 0.0126]),
    ("t2.small", [0.023, 0.025]),
    ("t2.medium", [0.0464, 0.05]),
    ("t2.large", [0.0928, 0.1008]),
    ("t2.xlarge", [0.1856, 0.2016]),
    ("t2.2xlarge", [0.3712, 0.4032]),
    ("t3.nano", [0.0052, 0.0057]),
    ("t3.micro", [0.0104, 0.0114]),
    ("t3.small", [0.0208, 0.0228]),
    ("t3.medium", [0.0416, 0.0456]),
    ("t3.large", [0.0832, 0.0912]),
    ("t3.xlarge", [0.1664, 0.1824]),
    ("t3.2xlarge", [0.3328, 0.3648]),
    ("m5.large", [0.096, 0.107]),
    ("m5.xlarge", [0.192, 0.214]),
    ("m5.2xlarge", [0.384, 0.428]),
    ("m5.4xlarge", [0.768, 0.856]),
    ("m5.8xlarge", [1.536, 1.712]),
    ("m5.12xlarge", [2.304, 2.568]),
    ("m5.16xlarge", [3.072, 3.424]),
    ("m5.24xlarge", [4.608, 5.136]),
    ("m5.metal", [4.608, 5.136]),
    ("c5.large", [0.085, 0.096]),
    ("c5.xlarge", [0.17, 0.192]),
    ("c5.2xlarge", [0.34, 0.384]),
    ("c5.4xlarge", [0.68, 0.768]),
    ("c5.9xlarge", [1.53, 1.728]),
    ("c5.12xlarge", [2.04, 2.304]),
    ("c5.18xlarge", [3.06, 3.456]),
    ("c5.24xlarge", [4.08, 4.608]),
    ("c5.metal", [4.08, 4.608]),
    ("r5.large", [0.126, 0.141]),
    ("r5.xlarge", [0.252, 0.282]),
    ("r5.2xlarge", [0.504, 0.564]),
    ("r5.4xlarge", [1.008, 1.128]),
    ("r5.8xlarge", [2.016, 2.256]),
    ("r5.12xlarge", [3.024, 3.384]),
    ("r5.16xlarge", [4.032, 4.512]),
    ("r5.24xlarge", [6.048, 6.768]),
    ("r5.metal", [6.048, 6.768]),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstanceType;

    fn cents(usd: f64) -> f64 {
        (usd * 100_000.0).round() / 100_000.0
    }

    #[test]
    fn smallest_fargate_pod_in_us_east_1() {
        let hourly = fargate_hourly("us-east-1", &FargateSize::SMALLEST).unwrap();
        assert_eq!(cents(hourly), 0.01234);
    }

    #[test]
    fn fargate_scales_with_size() {
        let size = FargateSize {
            millicpu: 2000,
            memory_mib: 9 * 1024,
        };
        let hourly = fargate_hourly("us-east-1", &size).unwrap();
        assert_eq!(cents(hourly), cents(2.0 * 0.04048 + 9.0 * 0.004445));
        assert!(fargate_hourly("eu-west-1", &size).unwrap() > hourly);
        assert_eq!(fargate_hourly("mars-north-1", &size), None);
    }

    #[test]
    fn ec2_prices() {
        assert_eq!(ec2_hourly("us-east-1", "t3.medium"), Some(0.0416));
        assert_eq!(ec2_hourly("eu-west-1", "t3.medium"), Some(0.0456));
        assert_eq!(ec2_hourly("eu-west-1", "t2.medium"), Some(0.05));
        assert_eq!(ec2_hourly("mars-north-1", "t3.medium"), None);
        assert_eq!(ec2_hourly("us-east-1", "x1.huge"), None);
    }

    #[test]
    fn the_table_agrees_with_the_published_figures() {
        let table = PriceTable::aws();
        let hourly = table
            .fargate_hourly("us-east-1", &FargateSize::SMALLEST)
            .unwrap();
        assert_eq!(cents(hourly), 0.01234);
        assert_eq!(table.ec2_hourly("us-east-1", "t3.medium"), Some(0.0416));
        assert_eq!(table.ec2_hourly("eu-west-1", "t3.medium"), Some(0.0456));
        assert_eq!(table.ec2_hourly("ap-south-1", "t3.medium"), None);
        assert!(table.source().contains("aws.amazon.com/fargate/pricing"));
        assert_eq!(
            table.regions().collect::<Vec<_>>(),
            ["eu-west-1", "us-east-1"]
        );
    }

    #[test]
    fn ebs_list_prices_per_gb_month() {
        assert_eq!(ebs_gb_month("us-east-1", EbsVolumeType::Gp2), Some(0.10));
        assert_eq!(ebs_gb_month("us-east-1", EbsVolumeType::Gp3), Some(0.08));
        assert_eq!(ebs_gb_month("mars-north-1", EbsVolumeType::Gp3), None);
        assert_eq!(EbsVolumeType::parse("gp3"), Some(EbsVolumeType::Gp3));
        assert_eq!(EbsVolumeType::parse("io2"), None);
        // 100 GB of gp3 for a 730-hour month is $8.
        let month = ebs_hourly("us-east-1", EbsVolumeType::Gp3, 100.0).unwrap() * 730.0;
        assert!((month - 8.0).abs() < 1e-9);
        for region in REGIONS {
            assert!(
                ebs_gb_month(region, EbsVolumeType::Gp2).is_some(),
                "{region}"
            );
        }
    }

    #[test]
    fn every_known_instance_type_has_a_price_everywhere() {
        for instance in InstanceType::all() {
            for region in REGIONS {
                let price = ec2_hourly(region, instance.name);
                assert!(
                    price.is_some_and(|p| p > 0.0),
                    "{} in {region}",
                    instance.name
                );
            }
        }
        assert_eq!(EC2.len(), InstanceType::all().len());
    }
}
