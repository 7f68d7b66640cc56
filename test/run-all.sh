#!/usr/bin/env bash
# Installs what the tests need, builds, and runs every test (the README's test command runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup/system.sh
bash test/setup/python.sh
npm run build
mkdir -p test-artifacts
# Test files are compiled to dist/test; node's runner finds every *.test.js below it.
node --test --test-concurrency="${TSLOTH_TEST_CONCURRENCY:-2}" dist/test/
