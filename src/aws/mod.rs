//! Talking to AWS: credentials, endpoints, signing, retries and the wire
//! protocols (query XML, REST-XML for S3, JSON 1.1 for Organizations).
//!
//! This layer knows nothing about checks. It turns a described call into a
//! response body or an [`AwsError`] that names what went wrong; the collectors
//! above it decide what an error means for the inventory.

pub mod client;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod xml;

pub use client::{AwsClient, ClientSettings, Protocol, Request};
pub use credentials::{Credentials, CredentialsProvider};
pub use endpoint::{Endpoints, Service};
pub use error::AwsError;
