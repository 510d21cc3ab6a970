"""Generated protobuf and gRPC modules for package agl.v1 (do not edit; see scripts/gen_protos.py)."""
