"""buf.validate messages that roomkey's protos import, generated from proto-deps. Do not edit."""
