// The other process of the fabric tests: attaches to the lane the test offers and echoes until the test goes.
return Rtt.Lanes.Bench.LanePeer.Run(args);
