//! The sans-I/O engine (issue 4).
#![forbid(unsafe_code)]
