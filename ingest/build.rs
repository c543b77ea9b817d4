//! Compiles the OTLP logs and Loki push protobuf definitions under `proto/` into Rust types.
//! `protox` parses them (pure Rust: no `protoc` on the machine or in the image) and
//! `prost-build` generates the code; the Loki descriptor set is kept for the tests.

use std::path::PathBuf;

use prost::Message;

const OTLP: &str = "opentelemetry/proto/collector/logs/v1/logs_service.proto";
const LOKI: &str = "loki/push.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile([OTLP, LOKI], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    // Loki's file and what it imports, for a client that builds its messages from the schema.
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true);
    compiler.open_file(LOKI)?;
    std::fs::write(
        out.join("loki_descriptor_set.bin"),
        compiler.file_descriptor_set().encode_to_vec(),
    )?;
    Ok(())
}
