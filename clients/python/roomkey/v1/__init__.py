"""Generated from proto/roomkey/v1 by scripts/generate-clients.sh. Do not edit."""
