//! dspm-audit: a data security posture audit of AWS accounts, mapped to
//! compliance frameworks.
//!
//! The crate reads as the audit runs: [`collect`] reads an account through
//! the [`aws`] client into an [`inventory`], [`evaluate`] runs pure checks
//! over it, and [`report`] maps the findings onto framework controls.
//! [`server`] and [`cli`] are the two ways in; [`audit`] ties one run
//! together for both.

#![forbid(unsafe_code)]

pub mod audit;
pub mod aws;
pub mod cli;
pub mod collect;
pub mod config;
pub mod demo;
pub mod evaluate;
pub mod inventory;
pub mod report;
pub mod server;
pub mod timestamp;
