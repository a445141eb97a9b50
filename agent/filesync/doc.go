// Package filesync replicates a directory tree file by file from a source's
// agent to the target's receiver (MIGRATE_FILE), then only what changed
// (SYNC), and checks the result (consistency verification). Linux only.
//
// # A pass
//
// Send walks the source root in lexical, depth-first order (filepath.WalkDir,
// symlinks not followed; with Root "/" the default excludes /proc /sys /dev
// /run /tmp and the mount points of virtual file systems are kept as empty
// directories, their contents skipped) and streams a manifest: for each
// entry its path relative to the root, type (directory, file, symlink, hard
// link to an earlier file entry, fifo or device), permission bits with
// setuid/setgid/sticky, numeric owner, mtime in nanoseconds, size, symlink
// target. Entries are numbered by their position; the root "." is 0.
//
// Receive applies the manifest as it arrives: directories are created,
// symlinks and special files made, and for each regular file it compares
// size and mtime with what the target has. A file that matches is skipped
// (owner and mode fixed in place if they alone differ); a file the target
// lacks is asked for whole; a file the target has another version of (both
// at least 128 KiB) gets its old content hashed block by block (128 KiB
// blocks, larger for files over 128 GiB so there are at most 2^20 blocks;
// xxhash64) and the hashes are sent: the sender answers, per block, "copy
// it from your old file", "a hole" or the new bytes. Hard links are made
// once every file is in place; directories get their mode, owner and mtime
// last, deepest first; then the receiver syncs the file system and reports.
//
// Deletions are mirrored per directory: when the manifest leaves a directory
// (its entries are contiguous in depth-first order) the receiver lists the
// target's directory and removes what the source did not list — except
// excluded paths, which the sender declares up front and the receiver leaves
// alone.
//
// New and changed content is written to a temporary name in the same
// directory (".smsf~<pass>~<n>") and renamed over the real name once
// complete, with its owner, mode and mtime already set: an interrupted pass
// never leaves a half file under a real name, and the next pass skips what
// was finished and removes older passes' temporaries.
//
// Data travels in frames of at most 1 MiB of raw data, s2-compressed when
// that saves an eighth. Zero runs (found with SEEK_DATA/SEEK_HOLE, then at
// 4 KiB granularity in the data read) are sent as holes and never written,
// so sparse files stay sparse on the target.
//
// # Pipelining
//
// Nothing waits for a round trip per file. The sender has one goroutine
// walking and encoding the manifest, one reading the receiver's requests
// into an unbounded queue (so it never blocks, and neither side's writer can
// stall the other's reader), a pool of readers preparing files (read,
// detect holes, compress, compare blocks) and a single send loop that sends
// the manifest first whenever a frame of it is ready and file data in
// request order otherwise, flushing only when it would wait. The receiver
// asks for files in batches, one request frame per manifest frame it
// processed, so requests trail the manifest by one frame while earlier files
// are already being written; hashing old versions runs on its own goroutine.
//
// # Wire format (big endian; str = uvarint length + bytes)
//
// Sender → receiver:
//
//	1  begin       version u8 | uvarint n | n × str excluded path
//	2  entries     uvarint n | n × entry
//	               entry: kind u8 | flags u8 | str path | uvarint mode | uvarint uid | uvarint gid |
//	                      varint mtimeNs | file: uvarint size, symlink: str target,
//	                      hardlink: uvarint index, special: uvarint rdev
//	3  manifestEnd entries u64
//	4  file        index u32 | size u64 | mode u8 (0 whole, 1 delta)   starts a file's content
//	5  data        offset u64 | rawLen u32 | flags u8 | bytes (flags&1: s2 block)
//	6  hole        offset u64 | len u64
//	7  copy        offset u64 | len u64      (delta only: same bytes as the target's old file)
//	8  fileEnd     size u64 | xxhash64 of the data frames' raw bytes
//	9  gone        index u32                 (the file vanished from the source)
//	10 done
//
// Receiver → sender:
//
//	32 want        uvarint skippedFiles | uvarint skippedBytes | uvarint n | n × uvarint index
//	33 delta       index u32 | blockSize u32 | oldSize u64 | blocks u64 | first u64 | hashes u64…
//	34 reqEnd      (no more requests)
//	35 result      uvarint deleted | uvarint written
//
// Verification (connection of kind KindVerify): the sender sends
// 64 begin (as 1), 65 files (uvarint n | n × (str path | uvarint size |
// xxhash64 u64)), 66 end (count u64); the receiver hashes its own copy of
// each file as the list arrives (several at once), then walks its tree for
// files the source does not have, and answers 67 result (uvarint total,
// different, missing, extra | uvarint n | n × str path).
//
// Either side gives up with transport's error frame, which carries the
// reason to the other side.
//
// # Safety on the receiver
//
// The sender is not trusted with the target's file system beyond the root:
//
//   - every path must be relative, clean, without NUL, without "..", at most
//     4096 bytes; the root appears once, first;
//   - an entry's parent must be a directory entry still open in the
//     depth-first listing (checked before anything is closed, as closing a
//     directory deletes what it lacks): "link -> /etc" followed by
//     "link/passwd" is refused, and so is a path through a symlink planted on
//     the target, since the manifest never lists it as a directory;
//   - directories are reached through descriptors: opened with O_NOFOLLOW
//     from their parent's descriptor while listing, or with openat2
//     RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS from the root (component by
//     component with O_NOFOLLOW where openat2 is missing); every change is
//     an *at call on such a descriptor with a final component that is never
//     followed (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, unlinkat, renameat), so
//     nothing is written through a symlink; a symlink where a directory must
//     be is replaced by a real directory;
//   - removal recurses through descriptors too, never following symlinks;
//   - a hard link must point to an earlier file entry of the same manifest;
//   - frames must be complete, in order and within their declared sizes
//     (truncated, overlong, duplicate or unexpected frames end the pass), and
//     every file's data must match its checksum before it gets its name;
//   - write errors, ENOSPC included, end the pass and are reported to the
//     sender; the temporary file is removed.
//
// # Limits
//
// Extended attributes, ACLs, SELinux labels and file capabilities are not
// copied; sockets are skipped; owners are numeric; a device node is skipped
// when the receiver is not root. Changed content is detected by size and
// mtime (to the nanosecond), as rsync does by default: a change that keeps
// both is not seen, and a target file system with coarser timestamps makes
// every file look changed. Blocks are compared at fixed offsets: bytes
// inserted near the start of a file resend the rest of it. A directory
// renamed on the source is sent again under its new name. The receiver keeps
// the manifest's directories, pending files and hard-link sources in memory;
// the sender keeps one path per entry.
package filesync
