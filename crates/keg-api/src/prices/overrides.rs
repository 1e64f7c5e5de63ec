//! A user's own prices (negotiated discounts, savings plans, a region keg has no figures for),
//! as a YAML (or JSON) file laid over the built-in table:
//!
//! ```yaml
//! source: "Our enterprise discount, June 2025"   # printed beside every report
//! regions:
//!   us-east-1:
//!     fargate: {vcpuHour: 0.0324, gbHour: 0.00356}
//!     ec2: {t3.medium: 0.0333}
//!   ap-south-1:                                   # a region keg has no figures for
//!     fargate: {vcpuHour: 0.04256, gbHour: 0.00467}
//!     ec2: {t3.medium: 0.0448}
//! ```
//!
//! Anything the file leaves out keeps its built-in price.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::FargateRate;

/// Errors from reading a price file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("reading the price file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not a price file.
    #[error("the price file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, as the parser or a check put it.
        message: String,
    },
}

/// The contents of a price file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFile {
    /// Where the file's figures come from (printed with reports).
    #[serde(default)]
    pub source: Option<String>,
    /// Prices by region.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionOverride>,
}

/// One region's prices in a price file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionOverride {
    /// Fargate's rates (both must be given).
    #[serde(default)]
    pub fargate: Option<FargateRate>,
    /// Hourly prices by instance type.
    #[serde(default)]
    pub ec2: BTreeMap<String, f64>,
}

impl PriceFile {
    /// Reads and checks the file at `path`.
    pub fn read(path: &Path) -> Result<PriceFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        PriceFile::parse(&text).map_err(|message| Error::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and checks a price file's text.
    pub fn parse(text: &str) -> Result<PriceFile, String> {
        let file: PriceFile = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        for (region, prices) in &file.regions {
            let fargate = prices.fargate.iter().flat_map(|r| {
                [
                    ("fargate.vcpuHour", r.vcpu_hour),
                    ("fargate.gbHour", r.gb_hour),
                ]
            });
            let ec2 = prices.ec2.iter().map(|(k, v)| (k.as_str(), *v));
            for (what, price) in fargate.chain(ec2) {
                // A typo'd negative or NaN would silently turn every report upside down.
                if !price.is_finite() || price < 0.0 {
                    return Err(format!(
                        "regions.{region}.{what}: {price} is not a price (USD per hour, 0 or more)"
                    ));
                }
            }
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fargate::FargateSize;
    use crate::prices::PriceTable;

    const FILE: &str = "
source: Our discount, June 2025
regions:
  us-east-1:
    fargate: {vcpuHour: 0.02, gbHour: 0.002}
    ec2: {t3.medium: 0.03}
  ap-south-1:
    ec2: {t3.small: 0.01}
";

    #[test]
    fn a_file_overrides_what_it_names_and_nothing_else() {
        let table = PriceTable::aws().with(&PriceFile::parse(FILE).unwrap());
        let small = FargateSize::SMALLEST;
        let hourly = table.fargate_hourly("us-east-1", &small).unwrap();
        assert!((hourly - (0.25 * 0.02 + 0.5 * 0.002)).abs() < 1e-12);
        assert_eq!(table.ec2_hourly("us-east-1", "t3.medium"), Some(0.03));
        assert_eq!(table.ec2_hourly("us-east-1", "t3.large"), Some(0.0832));
        assert_eq!(table.ec2_hourly("eu-west-1", "t3.medium"), Some(0.0456));
        assert_eq!(table.ec2_hourly("ap-south-1", "t3.small"), Some(0.01));
        assert_eq!(table.fargate("ap-south-1"), None);
        assert!(
            table
                .source()
                .starts_with("Our discount, June 2025; otherwise AWS")
        );
    }

    #[test]
    fn json_works_too() {
        let file =
            PriceFile::parse(r#"{"regions": {"eu-west-1": {"ec2": {"m5.large": 0.1}}}}"#).unwrap();
        let table = PriceTable::aws().with(&file);
        assert_eq!(table.ec2_hourly("eu-west-1", "m5.large"), Some(0.1));
        assert_eq!(table.source(), crate::prices::SOURCE);
    }

    #[test]
    fn mistakes_are_named() {
        let negative = "regions: {us-east-1: {ec2: {t3.medium: -1}}}";
        let err = PriceFile::parse(negative).unwrap_err();
        assert!(err.contains("regions.us-east-1.t3.medium: -1"), "{err}");
        let half = "regions: {us-east-1: {fargate: {vcpuHour: 0.1}}}";
        assert!(PriceFile::parse(half).unwrap_err().contains("gbHour"));
        let typo = "regions: {us-east-1: {ec2s: {}}}";
        assert!(PriceFile::parse(typo).unwrap_err().contains("ec2s"));
    }

    #[test]
    fn a_missing_file_says_which() {
        let err = PriceTable::load(Path::new("/nonexistent/prices.yaml")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/prices.yaml"),
            "{err}"
        );
    }
}
