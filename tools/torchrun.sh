#!/usr/bin/env bash
# What dist_train.sh and dist_test.sh share: run a tool of this repo under torchrun.
#   bash tools/torchrun.sh NPROC TOOL [tool args...]      (TOOL: a path relative to tools/)
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT (defaults 1, 0, 127.0.0.1, 29500);
# PYTHON defaults to the project's .venv.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: $0 NPROC TOOL [tool args...]" >&2
    exit 2
fi
NPROC=$1
TOOL=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python )}

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$NPROC" \
    "$ROOT/tools/$TOOL" "$@"
