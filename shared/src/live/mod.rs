//! Live updates: batching per client, sequence numbers and resume, fan-out through the pusher port.
