//! Types generated from `ingest/proto/` by `build.rs` (see `ingest/proto/README.md`).

#![allow(clippy::all, missing_docs)]

pub mod opentelemetry {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.common.v1.rs"
                ));
            }
        }
        pub mod resource {
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.resource.v1.rs"
                ));
            }
        }
        pub mod logs {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.logs.v1.rs"));
            }
        }
        pub mod collector {
            pub mod logs {
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.collector.logs.v1.rs"
                    ));
                }
            }
        }
    }
}

pub mod logproto {
    include!(concat!(env!("OUT_DIR"), "/logproto.rs"));
    /// The entries' timestamp type (`google.protobuf.Timestamp`).
    pub use prost_types::Timestamp;
}

pub use logproto as loki;
pub use opentelemetry::proto::collector::logs::v1 as otlp_collector;
pub use opentelemetry::proto::common::v1 as otlp_common;
pub use opentelemetry::proto::logs::v1 as otlp_logs;
pub use opentelemetry::proto::resource::v1 as otlp_resource;

/// The `FileDescriptorSet` of `loki/push.proto` and its imports (protobuf binary).
pub const LOKI_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/loki_descriptor_set.bin"));
