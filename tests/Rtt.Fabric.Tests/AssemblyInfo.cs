// The machine has two cores and the cross-process tests keep both busy: run test classes one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
