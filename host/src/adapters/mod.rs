//! credlock behind the token interfaces that client libraries already call, so that no
//! refresh happens inside the library, in one process, while another process does the same.
//! Each adapter is an optional feature: the default build depends on none of the libraries.

#[cfg(feature = "rmcp")]
pub mod rmcp;
