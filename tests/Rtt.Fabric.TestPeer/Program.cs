// The other process of the fabric tests: attaches to the lane the test offers and echoes until the test goes.
return Rtt.Fabric.Peers.LanePeer.Run(args);
