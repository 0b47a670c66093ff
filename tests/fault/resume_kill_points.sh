#!/usr/bin/env bash
# The long resume test (docs/testing.md "Resume, progress and run report"): 20 random kill -9 points in the work —
# 10 of one rank, 10 of every rank — and 24 inside the finalisation (12 steps drawn per kind from verification,
# text/config/Modelfile writes, fsyncs, renames, journal and lock removal: SF_FINISH_POINTS), each followed by
# --resume and a byte comparison with an uninterrupted run, plus the
# SIGTERM/SIGUSR1/refusal cases of tests/resume/kill_resume.sh (CI runs that script with 1 point per kind in the work
# and 2 in the finalisation). About 5 minutes at -np 2.
# Usage: tests/fault/resume_kill_points.sh [BUILD_DIR] [NP]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
export SHARDFORGE_BIN=$build/shardforge SHARDFORGE_SOURCE_DIR=$here SF_NP=${2:-2} SF_KILL_POINTS=10 SF_FINISH_POINTS=${SF_FINISH_POINTS:-12}
export SF_MPIRUN=${SF_MPIRUN:-"mpirun --oversubscribe --allow-run-as-root"}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec bash "$here/tests/resume/kill_resume.sh"
