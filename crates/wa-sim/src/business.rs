//! Business accounts: profiles (`xmlns="w:biz"`), catalogs, collections and products
//! (`w:biz:catalog`), and order details (`fb:thrift_iq`).
//!
//! Requests follow Baileys' `business.ts` and `Utils/business.ts`; replies have the
//! shape its parsers read. Collections and orders are made by the business app and by
//! customers, which the simulator does not model: tests seed them with
//! [`SimState::business_add_collection`] and [`SimState::business_add_order`]. Business
//! data is saved in the state file.

use std::collections::BTreeMap;

use prost::Message;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};
use wa_binary::{Jid, Node};
use wa_proto::vname_cert::VerifiedNameCertificate;
use wa_proto::vname_cert::verified_name_certificate::Details;

use crate::SimState;
use crate::route::resolve_user;
use crate::sim::{Shared, fresh_id};
use crate::state::Inner;

/// Most products per catalog.
const MAX_PRODUCTS: usize = 1000;
/// Most collections per account.
const MAX_COLLECTIONS: usize = 100;
/// Most orders the simulator keeps.
const MAX_ORDERS: usize = 10_000;
/// Longest text field kept, in bytes.
const MAX_TEXT: usize = 8192;
/// Most websites, images and opening-hours entries kept.
const MAX_LIST: usize = 32;
/// Longest verified business name kept, in bytes.
pub(crate) const MAX_VERIFIED_NAME: usize = 256;
/// The issuer of certificates the business app makes.
const VNAME_ISSUER: &str = "smb:wa";

/// The business part of the simulator's state (saved in the state file).
#[derive(Default, Clone, Serialize, Deserialize)]
pub(crate) struct BusinessState {
    /// Per account (phone number).
    accounts: BTreeMap<String, Biz>,
    /// Orders by id.
    orders: BTreeMap<String, Order>,
    next_product: u64,
}

/// One day's opening hours: day, mode, opening and closing minute.
type DayHours = (String, String, Option<u32>, Option<u32>);

#[derive(Default, Clone, Serialize, Deserialize)]
struct Biz {
    address: Option<String>,
    email: Option<String>,
    description: Option<String>,
    websites: Vec<String>,
    /// Time zone and `(day, mode, open, close)` entries.
    hours: Option<(String, Vec<DayHours>)>,
    /// Products in creation order.
    products: Vec<Product>,
    collections: Vec<(String, String, Vec<String>)>,
    /// The cover photo's id on the media host.
    #[serde(default)]
    cover_photo: Option<String>,
    /// The name the verified-name certificate vouches for (set with
    /// [`SimState::business_set_verified_name`]; the push name, or else `+phone`, when
    /// unset).
    #[serde(default)]
    verified_name: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Product {
    id: String,
    name: String,
    description: String,
    retailer_id: Option<String>,
    images: Vec<String>,
    price: Option<String>,
    currency: Option<String>,
    hidden: bool,
    origin: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Order {
    token: String,
    /// `(product id, name, price, currency, quantity)`.
    lines: Vec<(String, String, u64, String, u64)>,
}

fn iq_error(id: &str, code: u16, text: &'static str) -> Node {
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("type", "error")
        .attr("from", Jid::server_jid())
        .children([Node::builder("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

fn result(id: &str, children: Vec<Node>) -> Node {
    Node::builder("iq")
        .attr("id", id.to_owned())
        .attr("type", "result")
        .attr("from", Jid::server_jid())
        .children(children)
        .build()
}

fn text(tag: &str, s: &str) -> Node {
    Node::builder(tag.to_owned())
        .bytes(s.as_bytes().to_vec())
        .build()
}

fn child_text(node: &Node, tag: &str) -> Option<String> {
    node.child(tag)
        .and_then(Node::content_bytes)
        .and_then(|b| std::str::from_utf8(b).ok())
        .filter(|s| s.len() <= MAX_TEXT)
        .map(str::to_owned)
}

impl BusinessState {
    /// The id of the cover photo the account `phone` has set.
    pub(crate) fn cover_photo(&self, phone: &str) -> Option<String> {
        self.accounts.get(phone)?.cover_photo.clone()
    }

    /// Checks a loaded state against the bounds the server keeps.
    pub(crate) fn check(&self) -> Result<(), crate::Error> {
        let ok = self.orders.len() <= MAX_ORDERS
            && self.accounts.values().all(|b| {
                b.products.len() <= MAX_PRODUCTS
                    && b.collections.len() <= MAX_COLLECTIONS
                    && b.websites.len() <= MAX_LIST
                    && b.verified_name
                        .as_ref()
                        .is_none_or(|n| n.len() <= MAX_VERIFIED_NAME)
            });
        if ok {
            Ok(())
        } else {
            Err(crate::Error::BadState(
                "business data beyond the server's bounds",
            ))
        }
    }
}

impl Product {
    fn node(&self, owner: &str) -> Node {
        let mut children = vec![text("id", &self.id), text("name", &self.name)];
        if !self.description.is_empty() {
            children.push(text("description", &self.description));
        }
        if let Some(r) = &self.retailer_id {
            children.push(text("retailer_id", r));
        }
        children.push(text(
            "url",
            &format!("https://wa.me/p/{}/{}", self.id, owner),
        ));
        children.push(
            Node::builder("media")
                .children(self.images.iter().map(|u| {
                    Node::builder("image")
                        .children([text("request_image_url", u), text("original_image_url", u)])
                        .build()
                }))
                .build(),
        );
        if let Some(p) = &self.price {
            children.push(text("price", p));
        }
        if let Some(c) = &self.currency {
            children.push(text("currency", c));
        }
        if let Some(o) = &self.origin {
            children.push(
                Node::builder("compliance_info")
                    .children([text("country_code_origin", o)])
                    .build(),
            );
        }
        children.push(
            Node::builder("status_info")
                .children([text("status", "APPROVED"), text("can_appeal", "false")])
                .build(),
        );
        Node::builder("product")
            .attr("is_hidden", self.hidden.to_string())
            .children(children)
            .build()
    }

    /// Applies the fields present in a request's `<product>`; `false` when one is
    /// invalid (a non-numeric price, too many images).
    fn apply(&mut self, p: &Node) -> bool {
        if let Some(v) = child_text(p, "name") {
            self.name = v;
        }
        if let Some(v) = child_text(p, "description") {
            self.description = v;
        }
        if let Some(v) = child_text(p, "retailer_id") {
            self.retailer_id = Some(v);
        }
        if let Some(v) = child_text(p, "price") {
            if v.parse::<u64>().is_err() {
                return false;
            }
            self.price = Some(v);
        }
        if let Some(v) = child_text(p, "currency") {
            self.currency = Some(v);
        }
        if let Some(m) = p.child("media") {
            let imgs: Vec<String> = m
                .children_by_tag("image")
                .filter_map(|i| child_text(i, "url"))
                .collect();
            if imgs.len() > MAX_LIST {
                return false;
            }
            self.images = imgs;
        }
        if let Some(cc) = p
            .child("compliance_info")
            .and_then(|c| child_text(c, "country_code_origin"))
        {
            self.origin = Some(cc);
        }
        if let Some(h) = p.attr_opt::<&str>("is_hidden").ok().flatten() {
            self.hidden = h == "true";
        }
        true
    }
}

/// Answers a business iq from device `me`, or `None` when it is not one the simulator
/// knows.
pub(crate) fn iq(
    shared: &Shared,
    me: &Jid,
    id: &str,
    xmlns: &str,
    ty: &str,
    node: &Node,
) -> Option<Node> {
    let op = node.children().first()?;
    let mut st = shared.state.lock();
    let phone = me.user.as_str().to_owned();
    Some(match (xmlns, ty, op.tag()) {
        ("w:biz", "get", "business_profile") => get_profile(&st, id, op),
        ("w:biz", "set", "business_profile") => set_profile(&mut st, &shared.media, &phone, id, op),
        ("w:biz:catalog", "get", "product_catalog") => catalog(&st, id, op),
        ("w:biz:catalog", "get", "collections") => collections(&st, id, op),
        ("w:biz:catalog", "set", "product_catalog_add") => add_product(&mut st, &phone, id, op),
        ("w:biz:catalog", "set", "product_catalog_edit") => edit_product(&mut st, &phone, id, op),
        ("w:biz:catalog", "set", "product_catalog_delete") => {
            delete_products(&mut st, &phone, id, op)
        }
        ("fb:thrift_iq", "get", "order") => order(&st, id, op),
        _ => return None,
    })
}

/// The account (phone number) a request's `jid` attribute names.
fn owner_of(st: &Inner, node: &Node, attr: &str) -> Option<String> {
    let j = node.attr_opt::<Jid>(attr).ok().flatten()?;
    resolve_user(st, &j).map(|u| u.user.as_str().to_owned())
}

fn get_profile(st: &Inner, id: &str, op: &Node) -> Node {
    let Some(p) = op.child("profile") else {
        return iq_error(id, 400, "bad-request");
    };
    let Some(phone) = owner_of(st, p, "jid") else {
        return result(id, vec![Node::builder("business_profile").build()]);
    };
    let Some(b) = st.business.accounts.get(&phone) else {
        return result(id, vec![Node::builder("business_profile").build()]);
    };
    let mut children = Vec::new();
    if let Some(a) = &b.address {
        children.push(text("address", a));
    }
    if let Some(d) = &b.description {
        children.push(text("description", d));
    }
    for w in &b.websites {
        children.push(text("website", w));
    }
    if let Some(e) = &b.email {
        children.push(text("email", e));
    }
    children.push(
        Node::builder("categories")
            .children([Node::builder("category")
                .attr("id", "133436743388217")
                .bytes(b"Shopping & retail".to_vec())
                .build()])
            .build(),
    );
    if let Some((tz, days)) = &b.hours {
        children.push(
            Node::builder("business_hours")
                .attr("timezone", tz.clone())
                .children(days.iter().map(|(day, mode, open, close)| {
                    Node::builder("business_hours_config")
                        .attr("day_of_week", day.clone())
                        .attr("mode", mode.clone())
                        .attr_opt("open_time", open.map(|m| m.to_string()))
                        .attr_opt("close_time", close.map(|m| m.to_string()))
                        .build()
                }))
                .build(),
        );
    }
    result(
        id,
        vec![
            Node::builder("business_profile")
                .children([Node::builder("profile")
                    .attr("jid", Jid::pn(phone))
                    .children(children)
                    .build()])
                .build(),
        ],
    )
}

fn set_profile(
    st: &mut Inner,
    media: &crate::media::MediaHost,
    phone: &str,
    id: &str,
    op: &Node,
) -> Node {
    let b = st.business.accounts.entry(phone.to_owned()).or_default();
    // `<cover_photo op=update id token ts>` names an upload by the id and signature the
    // media host returned; `op=delete id` removes the current one.
    if let Some(c) = op.child("cover_photo") {
        let photo = c.attr_opt::<&str>("id").ok().flatten();
        match (c.attr_opt::<&str>("op").ok().flatten(), photo) {
            (Some("update"), Some(photo)) => {
                let token = c.attr_opt::<&str>("token").ok().flatten().unwrap_or("");
                if !media.check_cover(photo, token) {
                    return iq_error(id, 400, "bad-request");
                }
                b.cover_photo = Some(photo.to_owned());
            }
            (Some("delete"), Some(photo)) if b.cover_photo.as_deref() == Some(photo) => {
                b.cover_photo = None;
            }
            (Some("delete"), Some(_)) => return iq_error(id, 404, "item-not-found"),
            _ => return iq_error(id, 400, "bad-request"),
        }
        return result(id, vec![]);
    }
    let websites: Vec<String> = op
        .children_by_tag("website")
        .filter_map(|w| w.content_bytes())
        .filter_map(|w| std::str::from_utf8(w).ok().map(str::to_owned))
        .collect();
    if websites.len() > MAX_LIST {
        return iq_error(id, 400, "bad-request");
    }
    for (tag, field) in [
        ("address", &mut b.address),
        ("email", &mut b.email),
        ("description", &mut b.description),
    ] {
        if let Some(v) = child_text(op, tag) {
            *field = Some(v);
        }
    }
    if !websites.is_empty() {
        b.websites = websites;
    }
    if let Some(h) = op.child("business_hours") {
        let tz = h
            .attr_opt::<String>("timezone")
            .ok()
            .flatten()
            .unwrap_or_default();
        let days = h
            .children_by_tag("business_hours_config")
            .take(MAX_LIST)
            .filter_map(|c| {
                Some((
                    c.attr::<String>("day_of_week").ok()?,
                    c.attr::<String>("mode").ok()?,
                    c.attr_opt::<u32>("open_time").ok().flatten(),
                    c.attr_opt::<u32>("close_time").ok().flatten(),
                ))
            })
            .collect();
        b.hours = Some((tz, days));
    }
    result(id, vec![])
}

fn limit_of(op: &Node, tag: &str, default: usize) -> usize {
    child_text(op, tag)
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(default)
        .clamp(1, 100)
}

fn catalog(st: &Inner, id: &str, op: &Node) -> Node {
    let Some(phone) = owner_of(st, op, "jid") else {
        return iq_error(id, 404, "item-not-found");
    };
    let limit = limit_of(op, "limit", 10);
    let start = child_text(op, "after")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0);
    let products = st
        .business
        .accounts
        .get(&phone)
        .map(|b| b.products.as_slice())
        .unwrap_or_default();
    let page: Vec<Node> = products
        .iter()
        .skip(start)
        .take(limit)
        .map(|p| p.node(&phone))
        .collect();
    let mut children = page;
    if let Some(next) = next_page(start, limit, products.len()) {
        children.push(
            Node::builder("paging")
                .children([text("after", &next.to_string())])
                .build(),
        );
    }
    result(
        id,
        vec![Node::builder("product_catalog").children(children).build()],
    )
}

/// Where the page after `limit` items from `start` begins, when items remain (`start` is
/// the client's: any usize).
fn next_page(start: usize, limit: usize, len: usize) -> Option<usize> {
    let next = start.saturating_add(limit);
    (next < len).then_some(next)
}

fn collections(st: &Inner, id: &str, op: &Node) -> Node {
    let Some(phone) = owner_of(st, op, "biz_jid") else {
        return iq_error(id, 404, "item-not-found");
    };
    let limit = limit_of(op, "collection_limit", 51);
    let items = limit_of(op, "item_limit", 51);
    let b = st.business.accounts.get(&phone);
    let list: Vec<Node> = b
        .map(|b| {
            b.collections
                .iter()
                .take(limit)
                .map(|(cid, name, ids)| {
                    let products = ids
                        .iter()
                        .filter_map(|pid| b.products.iter().find(|p| &p.id == pid))
                        .take(items)
                        .map(|p| p.node(&phone));
                    Node::builder("collection")
                        .children(
                            [text("id", cid), text("name", name)]
                                .into_iter()
                                .chain(products)
                                .chain([Node::builder("status_info")
                                    .children([text("status", "APPROVED")])
                                    .build()]),
                        )
                        .build()
                })
                .collect()
        })
        .unwrap_or_default();
    result(
        id,
        vec![Node::builder("collections").children(list).build()],
    )
}

fn add_product(st: &mut Inner, phone: &str, id: &str, op: &Node) -> Node {
    let Some(p) = op.child("product") else {
        return iq_error(id, 400, "bad-request");
    };
    let bs = &mut st.business;
    let b = bs.accounts.entry(phone.to_owned()).or_default();
    if b.products.len() >= MAX_PRODUCTS {
        return iq_error(id, 406, "not-acceptable");
    }
    bs.next_product += 1;
    let mut product = Product {
        id: format!("{}", 7_000_000_000_000_000u64 + bs.next_product),
        name: String::new(),
        description: String::new(),
        retailer_id: None,
        images: Vec::new(),
        price: None,
        currency: None,
        hidden: false,
        origin: None,
    };
    if !product.apply(p) || product.name.trim().is_empty() || product.currency.is_none() {
        return iq_error(id, 400, "bad-request");
    }
    if p.child("compliance_info").is_none()
        && p.attr_opt::<&str>("compliance_category").ok().flatten() != Some("COUNTRY_ORIGIN_EXEMPT")
    {
        return iq_error(id, 400, "bad-request");
    }
    let node = product.node(phone);
    b.products.push(product);
    result(
        id,
        vec![
            Node::builder("product_catalog_add")
                .children([node])
                .build(),
        ],
    )
}

fn edit_product(st: &mut Inner, phone: &str, id: &str, op: &Node) -> Node {
    let Some(p) = op.child("product") else {
        return iq_error(id, 400, "bad-request");
    };
    let Some(pid) = child_text(p, "id") else {
        return iq_error(id, 400, "bad-request");
    };
    let Some(existing) = st
        .business
        .accounts
        .get_mut(phone)
        .and_then(|b| b.products.iter_mut().find(|x| x.id == pid))
    else {
        return iq_error(id, 404, "item-not-found");
    };
    let mut updated = existing.clone();
    if !updated.apply(p) || updated.name.trim().is_empty() {
        return iq_error(id, 400, "bad-request");
    }
    *existing = updated;
    let node = existing.node(phone);
    result(
        id,
        vec![
            Node::builder("product_catalog_edit")
                .children([node])
                .build(),
        ],
    )
}

fn delete_products(st: &mut Inner, phone: &str, id: &str, op: &Node) -> Node {
    let ids: Vec<String> = op
        .children_by_tag("product")
        .take(MAX_PRODUCTS)
        .filter_map(|p| child_text(p, "id"))
        .collect();
    let mut deleted = 0usize;
    if let Some(b) = st.business.accounts.get_mut(phone) {
        let before = b.products.len();
        b.products.retain(|p| !ids.contains(&p.id));
        deleted = before - b.products.len();
        for (_, _, members) in &mut b.collections {
            members.retain(|m| !ids.contains(m));
        }
    }
    result(
        id,
        vec![
            Node::builder("product_catalog_delete")
                .attr("deleted_count", deleted.to_string())
                .build(),
        ],
    )
}

fn order(st: &Inner, id: &str, op: &Node) -> Node {
    let Some(oid) = op.attr_opt::<String>("id").ok().flatten() else {
        return iq_error(id, 400, "bad-request");
    };
    let Some(o) = st.business.orders.get(&oid) else {
        return iq_error(id, 404, "item-not-found");
    };
    if child_text(op, "token").as_deref() != Some(o.token.as_str()) {
        return iq_error(id, 401, "not-authorized");
    }
    let mut total = 0u64;
    let mut currency = String::new();
    let mut children: Vec<Node> = Vec::new();
    for (pid, name, price, cur, qty) in &o.lines {
        total = total.saturating_add(price.saturating_mul(*qty));
        currency.clone_from(cur);
        children.push(
            Node::builder("product")
                .children([
                    text("id", pid),
                    text("name", name),
                    Node::builder("image")
                        .children([text(
                            "url",
                            &format!("https://mmg.whatsapp.net/p/{pid}.jpg"),
                        )])
                        .build(),
                    text("price", &price.to_string()),
                    text("currency", cur),
                    text("quantity", &qty.to_string()),
                ])
                .build(),
        );
    }
    children.push(
        Node::builder("price")
            .children([
                text("total", &total.to_string()),
                text("currency", &currency),
            ])
            .build(),
    );
    result(
        id,
        vec![
            Node::builder("order")
                .attr("id", oid)
                .children(children)
                .build(),
        ],
    )
}

/// The usync `<business>` answer for `account`: for a business, `<verified_name v
/// verified_level serial>` holding a `VerifiedNameCertificate` whose details name the
/// business (serial from the phone number, issuer `smb:wa`, issued when the account was
/// made) and whose signature is a digest of the account's identity key and the details
/// (clients do not check it); `None` for an ordinary account.
pub(crate) fn usync_verified_name(st: &Inner, account: &crate::state::Account) -> Option<Node> {
    let biz = st.business.accounts.get(&account.phone)?;
    let name = biz
        .verified_name
        .clone()
        .or_else(|| account.push_name.clone())
        .unwrap_or_else(|| format!("+{}", account.phone));
    let serial = account.phone.parse::<u64>().unwrap_or_default();
    let details = Details {
        serial: Some(serial),
        issuer: Some(VNAME_ISSUER.to_owned()),
        verified_name: Some(name),
        issue_time: Some(account.created),
        ..Default::default()
    }
    .encode_to_vec();
    let mut digest = Sha512::new();
    digest.update(account.identity.public.as_ref());
    digest.update(&details);
    let cert = VerifiedNameCertificate {
        signature: Some(digest.finalize().to_vec()),
        details: Some(details),
        ..Default::default()
    };
    Some(
        Node::builder("business")
            .children([Node::builder("verified_name")
                .attr("v", "1")
                .attr("verified_level", "unknown")
                .attr("serial", serial.to_string())
                .bytes(cert.encode_to_vec())
                .build()])
            .build(),
    )
}

impl SimState {
    /// Makes the account `phone` a business (if it is not one yet) whose verified name
    /// is `name` (`None`: back to the push name). Returns `false` for an unknown account
    /// or an empty name or one over 256 bytes.
    pub fn business_set_verified_name(&self, phone: &str, name: Option<&str>) -> bool {
        if name.is_some_and(|n| n.is_empty() || n.len() > MAX_VERIFIED_NAME) {
            return false;
        }
        let mut st = self.lock();
        if !st.accounts.contains_key(phone) {
            return false;
        }
        st.business
            .accounts
            .entry(phone.to_owned())
            .or_default()
            .verified_name = name.map(str::to_owned);
        true
    }

    /// Adds a collection named `name` holding the given products of `phone`'s catalog
    /// (collections are made in the business app, which the simulator does not model).
    /// Returns its id, or `None` when the account has no catalog or too many
    /// collections.
    pub fn business_add_collection(
        &self,
        phone: &str,
        name: &str,
        product_ids: &[&str],
    ) -> Option<String> {
        let mut st = self.lock();
        let b = st.business.accounts.get_mut(phone)?;
        if b.collections.len() >= MAX_COLLECTIONS {
            return None;
        }
        let cid = fresh_id();
        b.collections.push((
            cid.clone(),
            name.to_owned(),
            product_ids.iter().map(|s| (*s).to_owned()).collect(),
        ));
        Some(cid)
    }

    /// Records an order a customer placed with `seller` for `(product id, quantity)`
    /// lines of its catalog (orders come from customers' order messages, which the
    /// simulator does not model). Returns the order id and its token, or `None` when a
    /// product is unknown or has no price or currency.
    pub fn business_add_order(
        &self,
        seller: &str,
        lines: &[(&str, u64)],
    ) -> Option<(String, String)> {
        let mut st = self.lock();
        let bs = &mut st.business;
        if bs.orders.len() >= MAX_ORDERS {
            return None;
        }
        let b = bs.accounts.get(seller)?;
        let mut out = Vec::new();
        for (pid, qty) in lines {
            let p = b.products.iter().find(|p| p.id == *pid)?;
            out.push((
                p.id.clone(),
                p.name.clone(),
                p.price.as_deref()?.parse().ok()?,
                p.currency.clone()?,
                *qty,
            ));
        }
        let (oid, token) = (fresh_id(), fresh_id());
        bs.orders.insert(
            oid.clone(),
            Order {
                token: token.clone(),
                lines: out,
            },
        );
        Some((oid, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_starts_after_this_one() {
        assert_eq!(next_page(0, 10, 25), Some(10));
        assert_eq!(next_page(20, 10, 25), None);
        assert_eq!(next_page(15, 10, 25), None);
        // A client's start far past the end, up to the largest.
        assert_eq!(next_page(1_000, 10, 25), None);
        assert_eq!(next_page(usize::MAX, 100, 25), None);
    }
}
