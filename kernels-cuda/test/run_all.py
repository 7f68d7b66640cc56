"""Runs every kernels-cuda check in its own process; exit status 1 if any failed.
   python3 kernels-cuda/test/run_all.py [--sanitizer] [test_x.py ...]
   (--sanitizer: under compute-sanitizer memcheck; names: only those tests)"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = ["test_runtime.py", "test_ops.py", "test_gemm_linear.py", "test_attention.py", "test_cross_entropy.py", "test_decode.py",
         "test_nf4_small_batch.py", "test_lora_lowrank.py"]


def main():
    sanitize = "--sanitizer" in sys.argv
    only = [a for a in sys.argv[1:] if a.endswith(".py")]
    results = []
    for t in only or TESTS:
        cmd = [sys.executable, os.path.join(HERE, t)]
        if sanitize:
            # PyTorch's caching allocator hides overruns inside its own blocks; ask it for exact ones.
            # API errors are reported only as statuses: the OOM test asks cudaMalloc for too much on purpose.
            cmd = ["compute-sanitizer", "--tool", "memcheck", "--leak-check", "no", "--report-api-errors", "no",
                   "--error-exitcode", "9"] + cmd
        env = dict(os.environ, PYTORCH_NO_CUDA_MEMORY_CACHING="1" if sanitize else os.environ.get("PYTORCH_NO_CUDA_MEMORY_CACHING", "0"),
                   PYTHONUNBUFFERED="1")
        rc = subprocess.call(cmd, env=env, cwd=HERE)
        results.append((t, rc))
    print("\nsummary" + (" (compute-sanitizer memcheck)" if sanitize else ""))
    for t, rc in results:
        print(f"  {'PASS' if rc == 0 else 'FAIL'} {t} (exit {rc})")
    sys.exit(0 if all(rc == 0 for _, rc in results) else 1)


if __name__ == "__main__":
    main()
