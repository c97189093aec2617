//! The embedded demo: a fictional account for reviewers without AWS access.
//!
//! Its collection time is fixed, and checks measure ages from it, so the
//! demo gives the same results every day.

use crate::inventory::Inventory;

const INVENTORY: &str = include_str!("inventory.json");

pub fn inventory() -> Inventory {
    crate::audit::parse_inventory(INVENTORY).expect("the embedded demo inventory is valid (tested)")
}
