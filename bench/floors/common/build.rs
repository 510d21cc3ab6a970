// Generates the server side of agl's store service from the repository's own protos; every method
// but IngestSpans answers UNIMPLEMENTED (default stubs), so the crate follows the protos unchanged.
fn main() {
    let protos = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../protos");
    println!("cargo:rerun-if-changed={protos}");
    tonic_prost_build::configure()
        .build_client(false)
        .generate_default_stubs(true)
        .compile_protos(&[format!("{protos}/agl/v1/store.proto")], &[protos.to_string()])
        .expect("compiling protos/agl/v1/store.proto (PROTOC: a protoc that sees google/protobuf/*.proto)");
}
