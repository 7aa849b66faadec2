// Package watch owns turning file-system activity under a project's roots
// into timestamped events, and grouping those events into batches.
//
// # Watcher
//
// A Watcher uses one inotify instance (one fsnotify.Watcher) for every root,
// however many resources share them: Tilt's one-instance-per-resource is what
// made its 184k-file trees take half an hour. The initial walk reads each
// directory once and never enters an ignored one, so an ignored node_modules
// costs one readdir entry, not thousands of watches.
//
// Guarantees:
//   - Each event is stamped (Event.Time) when the watcher reads it, before any
//     batching: the edit time of a change-to-result trace.
//   - A directory created after the walk is watched first and read second, and
//     a Create is reported for everything already inside it, so `mkdir -p a/b
//     && echo x > a/b/f` and a `git checkout` report every file.
//   - When the kernel queue overflows, the watcher walks the roots again and
//     reports the difference against its snapshot (size, mtime and mode per
//     file) instead of giving up.
//   - A removed or renamed-away directory drops its watches and reports a
//     Remove for every file it knew inside it.
//   - Events are never dropped: the watcher queues without bound while its
//     consumer is busy, and delivers in the order read.
//
// Roots may be directories or files and may not exist yet. A file root (a
// Tiltfile) is watched through its parent directory; only its own events are
// reported. A missing root is watched from its nearest existing ancestor and
// picked up, with its contents, when it appears. Roots themselves are never
// subject to the ignore predicate; everything below them is.
//
// SetRoots (a config reload) walks the roots again with the new predicate,
// unless the caller's key says the roots and the ignore rules are what they
// were: the engine's key covers the config files, each resource's watched paths
// and ignore rules and the ignore files' contents, so editing a manifest or a
// command does not re-read a large tree.
//
// # Batcher
//
// A Batcher groups events: a batch is due `quiet` after its last event or
// `max` after its first, whichever comes first; events for the same path
// collapse to one (last op, first time). The measured peers wait much longer
// (Tilt 200 ms quiet and stamps after debouncing; compose 500 ms with no
// upper bound), which is time a user waits for nothing. The two presets:
//
//   - LiveQuiet/LiveMax (2 ms / 250 ms): for batches that can be live-updated.
//     Editors finish a save (write temp, rename) in well under a millisecond,
//     so 2 ms of quiet collects a save, and the quiet
//     period is the one wait in the save-to-running path that is pure delay
//     (the whole sync takes about as long). The first batch of an idle
//     resource is applied at once; what arrives while that update runs is
//     folded by the engine into one follow-up after FollowQuiet (100 ms) of
//     quiet (at most BurstMax, 5 s), so a burst gives one or two updates, not
//     dozens. While a burst's files keep arriving fast (BurstRate), the
//     quiet stretches by a quarter of the burst's span so far (BurstSlack),
//     so a writer's pauses inside a branch switch do not each cut an update. A scripted burst
//     of 1,000 small-file writes reached the watcher over 35 ms on an idle
//     machine (one batch, BenchmarkBurst) and over 0.4–0.75 s with both cores
//     busy (two batches, cut by the max): a sync costs milliseconds, so a
//     split batch costs little, while the max bounds the wait when something
//     (a build writing output) keeps the tree busy.
//   - RebuildQuiet/RebuildMax (200 ms / 2 s): a rebuild costs seconds, so
//     waiting for a branch switch or a formatter run to finish is cheaper than
//     rebuilding twice.
package watch
