//! Health probes (issue 13 item 2).
