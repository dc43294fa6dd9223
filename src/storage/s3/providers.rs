//! What differs between S3-compatible services, as data rather than `if endpoint contains …`
//! branches. Each entry names the document its rules come from.

use serde::{Deserialize, Serialize};

/// The S3-compatible services Offload knows by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
#[ts(rename = "S3Provider")]
pub enum Provider {
    Aws,
    R2,
    B2,
    Wasabi,
    Minio,
    Garage,
    #[default]
    Other,
}

/// A provider's defaults, as a form shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[ts(rename = "S3Preset")]
pub struct Preset {
    pub provider: Provider,
    pub label: &'static str,
    pub endpoint_template: Option<&'static str>,
    pub default_region: Option<&'static str>,
    pub path_style: bool,
    /// The endpoint cannot be derived from the region alone.
    pub needs_endpoint: bool,
}

/// One provider's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// The endpoint when none is given; `{region}` and `{account}` are filled in.
    pub endpoint_template: Option<&'static str>,
    /// The region to sign with when none is given.
    pub default_region: Option<&'static str>,
    /// Buckets addressed as `endpoint/bucket/key` rather than `bucket.endpoint/key`.
    pub path_style: bool,
    /// Send the SDK's CRC checksums and `aws-chunked` bodies only where an operation requires
    /// them: several S3-compatible services reject them. Offload then sends its own Content-MD5.
    pub checksums_when_required: bool,
    /// The service checks `x-amz-checksum-crc32c` and rejects a wrong one, so a single PUT can
    /// carry that (hardware-fast) instead of Content-MD5. Only where a test or the provider's
    /// documents show the check: a server that ignores the header would check nothing.
    pub validates_crc32c: bool,
}

impl Provider {
    pub const ALL: [Provider; 7] = [
        Provider::Aws,
        Provider::R2,
        Provider::B2,
        Provider::Wasabi,
        Provider::Minio,
        Provider::Garage,
        Provider::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::R2 => "r2",
            Provider::B2 => "b2",
            Provider::Wasabi => "wasabi",
            Provider::Minio => "minio",
            Provider::Garage => "garage",
            Provider::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|provider| provider.as_str() == text)
    }

    /// The name a person knows the service by.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Aws => "Amazon S3",
            Provider::R2 => "Cloudflare R2",
            Provider::B2 => "Backblaze B2",
            Provider::Wasabi => "Wasabi",
            Provider::Minio => "MinIO",
            Provider::Garage => "Garage",
            Provider::Other => "Other S3-compatible",
        }
    }

    /// What an "Add storage" form pre-fills for this service.
    pub fn preset(self) -> Preset {
        let quirks = self.quirks();
        Preset {
            provider: self,
            label: self.label(),
            endpoint_template: quirks.endpoint_template,
            default_region: quirks.default_region,
            path_style: quirks.path_style,
            needs_endpoint: quirks
                .endpoint_template
                .is_none_or(|template| template.contains("{account}")),
        }
    }

    pub fn quirks(self) -> Quirks {
        match self {
            // https://docs.aws.amazon.com/general/latest/gr/s3.html: regional virtual-hosted endpoints;
            // https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html: CRC32C.
            Provider::Aws => Quirks {
                endpoint_template: Some("https://s3.{region}.amazonaws.com"),
                default_region: Some("us-east-1"),
                path_style: false,
                checksums_when_required: false,
                validates_crc32c: true,
            },
            // https://developers.cloudflare.com/r2/api/s3/api/: region "auto", account endpoint,
            // no aws-chunked uploads. R2 also wants every part but the last of one size, which
            // `PartPlan` gives every provider.
            Provider::R2 => Quirks {
                endpoint_template: Some("https://{account}.r2.cloudflarestorage.com"),
                default_region: Some("auto"),
                path_style: true,
                checksums_when_required: true,
                validates_crc32c: false,
            },
            // https://www.backblaze.com/docs/cloud-storage-s3-compatible-api: s3.<region>.backblazeb2.com.
            Provider::B2 => Quirks {
                endpoint_template: Some("https://s3.{region}.backblazeb2.com"),
                default_region: None,
                path_style: false,
                checksums_when_required: true,
                validates_crc32c: false,
            },
            // https://docs.wasabi.com/docs/what-are-the-service-urls-for-wasabi-s-different-storage-regions
            Provider::Wasabi => Quirks {
                endpoint_template: Some("https://s3.{region}.wasabisys.com"),
                default_region: Some("us-east-1"),
                path_style: false,
                checksums_when_required: true,
                validates_crc32c: false,
            },
            // MinIO and Garage are self-hosted: the user names the endpoint; both want path style.
            // https://min.io/docs/minio/linux/reference/s3-api-compatibility.html: flexible checksums.
            Provider::Minio => Quirks {
                endpoint_template: None,
                default_region: Some("us-east-1"),
                path_style: true,
                checksums_when_required: true,
                validates_crc32c: true,
            },
            // https://garagehq.deuxfleurs.fr/documentation/reference-manual/s3-compatibility/;
            // that it rejects a wrong CRC32C is checked by tests/s3.rs.
            Provider::Garage => Quirks {
                endpoint_template: None,
                default_region: Some("garage"),
                path_style: true,
                checksums_when_required: true,
                validates_crc32c: true,
            },
            Provider::Other => Quirks {
                endpoint_template: None,
                default_region: Some("us-east-1"),
                path_style: true,
                checksums_when_required: true,
                validates_crc32c: false,
            },
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
