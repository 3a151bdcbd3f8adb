//! Tests of the name server over real loopback sockets.
