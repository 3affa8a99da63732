#!/usr/bin/env bash
# Multi-process training with torchrun (one process per GPU, or per CPU slot without GPUs).
#   bash tools/dist_train.sh CONFIG NPROC [train.py args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT (defaults 1, 0, 127.0.0.1, 29500).
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG NPROC [train.py args...]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
exec bash "$(dirname "$0")/torchrun.sh" "$NPROC" train.py "$CONFIG" --launcher pytorch "$@"
