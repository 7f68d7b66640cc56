// Swaps two directory entries in one step, so a save that replaces DIR never leaves a moment where
// DIR is missing: Linux renameat2(RENAME_EXCHANGE) and macOS renamex_np(RENAME_SWAP), both reached
// through koffi. Where the call is missing or the filesystem refuses it (some FUSE and network
// mounts), exchangeDirectories returns false and the caller falls back to two renames.
import koffi from "koffi";

const AT_FDCWD = -100;
const LINUX_RENAME_EXCHANGE = 2;
const DARWIN_RENAME_SWAP = 2;

type Exchange = (a: string, b: string) => number;
let cached: Exchange | null | undefined;

function bind(): Exchange | null {
  try {
    if (process.platform === "linux") {
      const renameat2 = koffi.load("libc.so.6").func("int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)");
      return (a, b) => renameat2(AT_FDCWD, a, AT_FDCWD, b, LINUX_RENAME_EXCHANGE) as number;
    }
    if (process.platform === "darwin") {
      const renamex = koffi.load("libSystem.B.dylib").func("int renamex_np(const char *from, const char *to, unsigned int flags)");
      return (a, b) => renamex(a, b, DARWIN_RENAME_SWAP) as number;
    }
  } catch {
    // libc without the call (glibc < 2.28, musl) or no koffi build for this platform.
  }
  return null;
}

/** Atomically swaps the entries at `a` and `b` (both must exist); false where this system cannot. */
export function exchangeDirectories(a: string, b: string): boolean {
  if (cached === undefined) cached = bind();
  return cached !== null && cached(a, b) === 0;
}
