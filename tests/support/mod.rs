//! Shared helpers for the integration tests (`mod support;` in a test file).
//!
//! Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod creds_stub;
pub mod fault_proxy;
pub mod moto;
pub mod policy;
pub mod product;
pub mod stub;
