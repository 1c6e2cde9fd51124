//! `lookup`: returns a customer record from a small built-in CRM, personal
//! data included (name, e-mail, phone, IBAN), as a real back-office tool
//! would. It exists to show the node's privacy filter: the agent receives
//! the record with the personal data replaced by typed placeholders.

use serde_json::{json, Value};
use vigil_tool_abi::str_arg;

/// The built-in customers (made-up people; the IBAN is the ISO 13616
/// example number, the phone number is in a range reserved for drama).
fn customer(id: &str) -> Option<Value> {
    match id {
        "C-1042" => Some(json!({
            "id": "C-1042",
            "name": "Ada Lovelace",
            "email": "ada.lovelace@example.com",
            "phone": "+44 20 7946 0958",
            "iban": "GB82 WEST 1234 5698 7654 32",
            "plan": "enterprise",
            "open_tickets": 2
        })),
        "C-2077" => Some(json!({
            "id": "C-2077",
            "name": "Alan Turing",
            "email": "alan.turing@example.org",
            "phone": "+44 161 496 0123",
            "iban": "DE89 3704 0044 0532 0130 00",
            "plan": "starter",
            "open_tickets": 0
        })),
        _ => None,
    }
}

fn main() {
    vigil_tool_abi::run(|_, args| {
        let id = str_arg(&args, "customer")?;
        customer(id).ok_or_else(|| format!("no customer with id `{id}`"))
    })
}
