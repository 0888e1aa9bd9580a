"""`edgemed monitor`: a live ECG in (a replayed recording, raw frames on stdin or a socket, a Lab Streaming Layer
stream), beats, alarms and a Holter-style report out. `sources` reads, `framing` is the wire format, `alarms` and
`profile` decide what to report, `session` runs it all, `outputs`, `fhir` and `report` write it."""
