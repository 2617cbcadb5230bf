//! Sans-IO request builders and reply parsers for business profiles (`w:biz`), catalogs
//! and collections (`w:biz:catalog`) and orders (`fb:thrift_iq`).

use wa_binary::{Jid, Node};

use crate::Error;

/// Most products taken from one catalog, collection or order reply.
pub const MAX_PRODUCTS: usize = 1000;
/// Most collections taken from one reply.
pub const MAX_COLLECTIONS: usize = 100;
/// Most websites, images or opening-hours entries taken from one element.
pub const MAX_LIST: usize = 32;
/// Longest text field accepted in a request, in bytes.
pub const MAX_TEXT: usize = 8192;

/// Opening hours of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayHours {
    /// `sun`, `mon`, ... as the server names days.
    pub day: String,
    /// `open_24h`, `appointment_only` or `specific_hours`.
    pub mode: String,
    /// Opening time in minutes after midnight (`specific_hours` only).
    pub open_minutes: Option<u32>,
    /// Closing time in minutes after midnight (`specific_hours` only).
    pub close_minutes: Option<u32>,
}

/// Opening hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    /// An IANA time zone name.
    pub timezone: String,
    /// One entry per day that has hours.
    pub days: Vec<DayHours>,
}

/// A business account's public profile.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusinessProfile {
    /// The account.
    pub jid: Jid,
    /// Street address.
    pub address: Option<String>,
    /// Description (empty when none).
    pub description: String,
    /// Websites.
    pub websites: Vec<String>,
    /// Contact e-mail.
    pub email: Option<String>,
    /// The first category's name.
    pub category: Option<String>,
    /// Every category, as (id, name), in the server's order.
    pub categories: Vec<(String, String)>,
    /// Opening hours.
    pub hours: Option<BusinessHours>,
}

/// Changes to our business profile; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileUpdate {
    /// New address.
    pub address: Option<String>,
    /// New e-mail.
    pub email: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New websites (replacing the old ones).
    pub websites: Option<Vec<String>>,
    /// New opening hours.
    pub hours: Option<BusinessHours>,
}

/// A catalog product.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Product {
    /// The server's product id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description (empty when none).
    pub description: String,
    /// The seller's own id for it.
    pub retailer_id: Option<String>,
    /// A link to the product.
    pub url: Option<String>,
    /// Image URLs.
    pub image_urls: Vec<String>,
    /// Price in thousandths of the currency unit (`1000` is 1.00).
    pub price: Option<u64>,
    /// ISO 4217 currency code.
    pub currency: Option<String>,
    /// Hidden from customers.
    pub hidden: bool,
    /// The review status (`APPROVED`, `PENDING`, ...), when given.
    pub review_status: Option<String>,
}

/// A new product. Images must already be uploaded (their URLs are sent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProductCreate {
    /// Name (required).
    pub name: String,
    /// Description.
    pub description: String,
    /// Price in thousandths of the currency unit.
    pub price: u64,
    /// ISO 4217 currency code (required).
    pub currency: String,
    /// The seller's own id.
    pub retailer_id: Option<String>,
    /// Image URLs.
    pub image_urls: Vec<String>,
    /// Hidden from customers.
    pub hidden: bool,
    /// ISO country code of origin; `None` declares the product exempt.
    pub origin_country: Option<String>,
}

impl ProductCreate {
    /// A visible product with a name, price and currency.
    pub fn new(name: impl Into<String>, price: u64, currency: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            price,
            currency: currency.into(),
            ..Self::default()
        }
    }
}

/// Changes to a product; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProductUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New price.
    pub price: Option<u64>,
    /// New currency.
    pub currency: Option<String>,
    /// New retailer id.
    pub retailer_id: Option<String>,
    /// New image URLs.
    pub image_urls: Option<Vec<String>>,
    /// Hide or show.
    pub hidden: Option<bool>,
}

/// One page of a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// The products on this page.
    pub products: Vec<Product>,
    /// The cursor for the next page, when there is one.
    pub next_cursor: Option<String>,
}

/// A named group of products.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its products.
    pub products: Vec<Product>,
    /// Review status, when given.
    pub status: Option<String>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderProduct {
    /// Product id.
    pub id: String,
    /// Product name.
    pub name: String,
    /// Image URL.
    pub image_url: Option<String>,
    /// Unit price in thousandths.
    pub price: u64,
    /// Currency.
    pub currency: String,
    /// Quantity.
    pub quantity: u64,
}

/// An order's contents and total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDetails {
    /// The lines.
    pub products: Vec<OrderProduct>,
    /// Total in thousandths.
    pub total: u64,
    /// Currency of the total.
    pub currency: String,
}

fn text(tag: &str, s: &str) -> Node {
    Node::builder(tag.to_owned())
        .bytes(s.as_bytes().to_vec())
        .build()
}

/// The UTF-8 text of child `tag`.
fn child_text(node: &Node, tag: &str) -> Option<String> {
    node.child(tag)
        .and_then(Node::content_bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn child_number(node: &Node, tag: &str, what: &'static str) -> Result<Option<u64>, Error> {
    match child_text(node, tag) {
        None => Ok(None),
        Some(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Malformed(what)),
    }
}

fn too_long(s: &str) -> bool {
    s.len() > MAX_TEXT
}

fn iq(kind: &'static str, xmlns: &'static str, child: Node) -> Node {
    Node::builder("iq")
        .attr("type", kind)
        .attr("xmlns", xmlns)
        .attr("to", Jid::server_jid())
        .children([child])
        .build()
}

/// The `<iq xmlns="w:biz" type="get">` for `jid`'s business profile.
pub fn build_profile_query(jid: &Jid) -> Node {
    iq(
        "get",
        "w:biz",
        Node::builder("business_profile")
            .attr("v", "244")
            .children([Node::builder("profile").attr("jid", jid.clone()).build()])
            .build(),
    )
}

fn hours_node(h: &BusinessHours) -> Node {
    Node::builder("business_hours")
        .attr("timezone", h.timezone.clone())
        .children(h.days.iter().map(|d| {
            Node::builder("business_hours_config")
                .attr("day_of_week", d.day.clone())
                .attr("mode", d.mode.clone())
                .attr_opt("open_time", d.open_minutes.map(|m| m.to_string()))
                .attr_opt("close_time", d.close_minutes.map(|m| m.to_string()))
                .build()
        }))
        .build()
}

fn parse_hours(node: &Node) -> BusinessHours {
    BusinessHours {
        timezone: node
            .attr_opt::<String>("timezone")
            .ok()
            .flatten()
            .unwrap_or_default(),
        days: node
            .children_by_tag("business_hours_config")
            .take(MAX_LIST)
            .filter_map(|c| {
                Some(DayHours {
                    day: c.attr::<String>("day_of_week").ok()?,
                    mode: c.attr::<String>("mode").ok()?,
                    open_minutes: c.attr_opt::<u32>("open_time").ok().flatten(),
                    close_minutes: c.attr_opt::<u32>("close_time").ok().flatten(),
                })
            })
            .collect(),
    }
}

/// The `<iq xmlns="w:biz" type="set">` changing our profile (a delta).
///
/// # Errors
/// [`Error::InvalidRequest`] for an empty update or overlong fields.
pub fn build_profile_update(update: &ProfileUpdate) -> Result<Node, Error> {
    let mut children = Vec::new();
    for (tag, v) in [
        ("address", &update.address),
        ("email", &update.email),
        ("description", &update.description),
    ] {
        if let Some(v) = v {
            if too_long(v) {
                return Err(Error::InvalidRequest("profile field too long"));
            }
            children.push(text(tag, v));
        }
    }
    if let Some(ws) = &update.websites {
        if ws.len() > MAX_LIST || ws.iter().any(|w| too_long(w)) {
            return Err(Error::InvalidRequest("too many or too long websites"));
        }
        children.extend(ws.iter().map(|w| text("website", w)));
    }
    if let Some(h) = &update.hours {
        if h.days.len() > MAX_LIST {
            return Err(Error::InvalidRequest("too many opening-hours entries"));
        }
        children.push(hours_node(h));
    }
    if children.is_empty() {
        return Err(Error::InvalidRequest("empty profile update"));
    }
    Ok(iq(
        "set",
        "w:biz",
        Node::builder("business_profile")
            .attr("v", "3")
            .attr("mutation_type", "delta")
            .children(children)
            .build(),
    ))
}

fn cover_photo_iq(cover: Node) -> Node {
    iq(
        "set",
        "w:biz",
        Node::builder("business_profile")
            .attr("v", "3")
            .attr("mutation_type", "delta")
            .children([cover])
            .build(),
    )
}

/// The `<iq xmlns="w:biz" type="set">` making an uploaded photo our cover photo: the id,
/// signature and time the media host returned for the upload.
///
/// # Errors
/// [`Error::InvalidRequest`] for an empty or overlong id, signature or time.
pub fn build_cover_photo_update(id: &str, meta_hmac: &str, ts: &str) -> Result<Node, Error> {
    if [id, meta_hmac, ts]
        .iter()
        .any(|v| v.is_empty() || too_long(v))
    {
        return Err(Error::InvalidRequest("bad cover photo handle"));
    }
    Ok(cover_photo_iq(
        Node::builder("cover_photo")
            .attr("id", id.to_owned())
            .attr("op", "update")
            .attr("token", meta_hmac.to_owned())
            .attr("ts", ts.to_owned())
            .build(),
    ))
}

/// The `<iq xmlns="w:biz" type="set">` removing the cover photo `id`.
///
/// # Errors
/// [`Error::InvalidRequest`] for an empty or overlong id.
pub fn build_cover_photo_removal(id: &str) -> Result<Node, Error> {
    if id.is_empty() || too_long(id) {
        return Err(Error::InvalidRequest("bad cover photo id"));
    }
    Ok(cover_photo_iq(
        Node::builder("cover_photo")
            .attr("op", "delete")
            .attr("id", id.to_owned())
            .build(),
    ))
}

/// The profile in a `w:biz` get reply; `None` when the account has no business profile.
///
/// # Errors
/// [`Error::Malformed`] when the reply has no `<business_profile>` or the profile no
/// valid `jid`.
pub fn parse_profile_reply(reply: &Node) -> Result<Option<BusinessProfile>, Error> {
    let bp = reply
        .child("business_profile")
        .ok_or_else(|| Error::Malformed("reply without business_profile"))?;
    let Some(p) = bp.child("profile") else {
        return Ok(None);
    };
    let jid: Jid = p
        .attr("jid")
        .map_err(|_| Error::Malformed("business profile without jid"))?;
    Ok(Some(BusinessProfile {
        jid,
        address: child_text(p, "address"),
        description: child_text(p, "description").unwrap_or_default(),
        websites: p
            .children_by_tag("website")
            .take(MAX_LIST)
            .filter_map(Node::content_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect(),
        email: child_text(p, "email"),
        category: p
            .child("categories")
            .and_then(|c| child_text(c, "category")),
        categories: p
            .child("categories")
            .map(|c| {
                c.children_by_tag("category")
                    .take(MAX_LIST)
                    .map(|k| {
                        let id = k
                            .attr_opt::<String>("id")
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        let name = k
                            .content_bytes()
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                            .unwrap_or_default();
                        (id, name)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        hours: p.child("business_hours").map(parse_hours),
    }))
}

/// A `<product>` element from create fields (no id) or update fields (with id).
fn product_node(id: Option<&str>, p: &ProductUpdate, origin: Option<Option<&str>>) -> Node {
    let mut children = Vec::new();
    if let Some(id) = id {
        children.push(text("id", id));
    }
    if let Some(v) = &p.name {
        children.push(text("name", v));
    }
    if let Some(v) = &p.description {
        children.push(text("description", v));
    }
    if let Some(v) = &p.retailer_id {
        children.push(text("retailer_id", v));
    }
    if let Some(imgs) = p.image_urls.as_ref().filter(|i| !i.is_empty()) {
        children.push(
            Node::builder("media")
                .children(
                    imgs.iter()
                        .map(|u| Node::builder("image").children([text("url", u)]).build()),
                )
                .build(),
        );
    }
    if let Some(v) = p.price {
        children.push(text("price", &v.to_string()));
    }
    if let Some(v) = &p.currency {
        children.push(text("currency", v));
    }
    let mut b = Node::builder("product");
    match origin {
        Some(Some(cc)) => children.push(
            Node::builder("compliance_info")
                .children([text("country_code_origin", cc)])
                .build(),
        ),
        Some(None) => b = b.attr("compliance_category", "COUNTRY_ORIGIN_EXEMPT"),
        None => {}
    }
    b.attr_opt("is_hidden", p.hidden.map(|h| h.to_string()))
        .children(children)
        .build()
}

fn catalog_edit(tag: &'static str, product: Node) -> Node {
    iq(
        "set",
        "w:biz:catalog",
        Node::builder(tag)
            .attr("v", "1")
            .children([product, text("width", "100"), text("height", "100")])
            .build(),
    )
}

fn check_product_text(p: &ProductUpdate) -> Result<(), Error> {
    let fields = [&p.name, &p.description, &p.retailer_id, &p.currency];
    if fields.iter().any(|f| f.as_deref().is_some_and(too_long))
        || p.image_urls
            .as_ref()
            .is_some_and(|i| i.len() > MAX_LIST || i.iter().any(|u| too_long(u)))
    {
        return Err(Error::InvalidRequest("product field too long"));
    }
    Ok(())
}

/// The `<product_catalog_add>` creating `p`.
///
/// # Errors
/// [`Error::InvalidRequest`] for an empty name or currency, or overlong fields.
pub fn build_product_create(p: &ProductCreate) -> Result<Node, Error> {
    if p.name.trim().is_empty() {
        return Err(Error::InvalidRequest("product without a name"));
    }
    if p.currency.trim().is_empty() {
        return Err(Error::InvalidRequest("product without a currency"));
    }
    let fields = ProductUpdate {
        name: Some(p.name.clone()),
        description: Some(p.description.clone()),
        price: Some(p.price),
        currency: Some(p.currency.clone()),
        retailer_id: p.retailer_id.clone(),
        image_urls: Some(p.image_urls.clone()),
        hidden: Some(p.hidden),
    };
    check_product_text(&fields)?;
    Ok(catalog_edit(
        "product_catalog_add",
        product_node(None, &fields, Some(p.origin_country.as_deref())),
    ))
}

/// The `<product_catalog_edit>` changing product `id`.
///
/// # Errors
/// [`Error::InvalidRequest`] for an empty id, an empty name, or overlong fields.
pub fn build_product_update(id: &str, u: &ProductUpdate) -> Result<Node, Error> {
    if id.is_empty() || too_long(id) {
        return Err(Error::InvalidRequest("bad product id"));
    }
    if u.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(Error::InvalidRequest("product without a name"));
    }
    check_product_text(u)?;
    Ok(catalog_edit(
        "product_catalog_edit",
        product_node(Some(id), u, None),
    ))
}

/// The `<product_catalog_delete>` removing products.
///
/// # Errors
/// [`Error::InvalidRequest`] for no ids or an empty id.
pub fn build_product_delete(ids: &[&str]) -> Result<Node, Error> {
    if ids.is_empty() || ids.len() > MAX_PRODUCTS || ids.iter().any(|i| i.is_empty()) {
        return Err(Error::InvalidRequest("1 to 1000 non-empty product ids"));
    }
    Ok(iq(
        "set",
        "w:biz:catalog",
        Node::builder("product_catalog_delete")
            .attr("v", "1")
            .children(
                ids.iter()
                    .map(|i| Node::builder("product").children([text("id", i)]).build()),
            )
            .build(),
    ))
}

/// The `<product_catalog>` query for `jid`'s catalog: `limit` products after `cursor`.
pub fn build_catalog_query(jid: &Jid, limit: u32, cursor: Option<&str>) -> Node {
    let mut children = vec![
        text("limit", &limit.clamp(1, 100).to_string()),
        text("width", "100"),
        text("height", "100"),
    ];
    if let Some(c) = cursor {
        children.push(text("after", c));
    }
    iq(
        "get",
        "w:biz:catalog",
        Node::builder("product_catalog")
            .attr("jid", jid.clone())
            .attr("allow_shop_source", "true")
            .children(children)
            .build(),
    )
}

/// The `<collections>` query for `jid`'s collections.
pub fn build_collections_query(jid: &Jid, limit: u32) -> Node {
    let limit = limit.clamp(1, 100).to_string();
    let mut n = iq(
        "get",
        "w:biz:catalog",
        Node::builder("collections")
            .attr("biz_jid", jid.clone())
            .children([
                text("collection_limit", &limit),
                text("item_limit", &limit),
                text("width", "100"),
                text("height", "100"),
            ])
            .build(),
    );
    n.attrs.insert("smax_id", "35");
    n
}

/// The `<order op="get">` query (`xmlns="fb:thrift_iq"`) for an order's details; the
/// token comes from the order message.
pub fn build_order_query(order_id: &str, token: &str) -> Node {
    let mut n = iq(
        "get",
        "fb:thrift_iq",
        Node::builder("order")
            .attr("op", "get")
            .attr("id", order_id.to_owned())
            .children([
                Node::builder("image_dimensions")
                    .children([text("width", "100"), text("height", "100")])
                    .build(),
                text("token", token),
            ])
            .build(),
    );
    n.attrs.insert("smax_id", "5");
    n
}

/// One `<product>` of a catalog, collection or edit reply.
///
/// # Errors
/// [`Error::Malformed`] without an id or name, or with a non-numeric price.
pub fn parse_product(node: &Node) -> Result<Product, Error> {
    let id = child_text(node, "id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Malformed("product without id"))?;
    let name = child_text(node, "name").ok_or_else(|| Error::Malformed("product without name"))?;
    Ok(Product {
        id,
        name,
        description: child_text(node, "description").unwrap_or_default(),
        retailer_id: child_text(node, "retailer_id"),
        url: child_text(node, "url"),
        image_urls: node
            .child("media")
            .map(|m| {
                m.children_by_tag("image")
                    .take(MAX_LIST)
                    .filter_map(|i| {
                        child_text(i, "request_image_url").or_else(|| child_text(i, "url"))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        price: child_number(node, "price", "product price is not a number")?,
        currency: child_text(node, "currency"),
        hidden: node.attr_opt::<&str>("is_hidden").ok().flatten() == Some("true"),
        review_status: node
            .child("status_info")
            .and_then(|s| child_text(s, "status")),
    })
}

fn products_of(node: &Node) -> Result<Vec<Product>, Error> {
    node.children_by_tag("product")
        .take(MAX_PRODUCTS)
        .map(parse_product)
        .collect()
}

/// A catalog page.
///
/// # Errors
/// [`Error::Malformed`] without `<product_catalog>` or with a malformed product.
pub fn parse_catalog_reply(reply: &Node) -> Result<Catalog, Error> {
    let c = reply
        .child("product_catalog")
        .ok_or_else(|| Error::Malformed("reply without product_catalog"))?;
    Ok(Catalog {
        products: products_of(c)?,
        next_cursor: c
            .child("paging")
            .and_then(|p| child_text(p, "after"))
            .filter(|s| !s.is_empty()),
    })
}

/// The collections of a `<collections>` reply.
///
/// # Errors
/// [`Error::Malformed`] without `<collections>`, or a collection without an id or name,
/// or with a malformed product.
pub fn parse_collections_reply(reply: &Node) -> Result<Vec<Collection>, Error> {
    let c = reply
        .child("collections")
        .ok_or_else(|| Error::Malformed("reply without collections"))?;
    c.children_by_tag("collection")
        .take(MAX_COLLECTIONS)
        .map(|col| {
            Ok(Collection {
                id: child_text(col, "id")
                    .ok_or_else(|| Error::Malformed("collection without id"))?,
                name: child_text(col, "name")
                    .ok_or_else(|| Error::Malformed("collection without name"))?,
                products: products_of(col)?,
                status: col
                    .child("status_info")
                    .and_then(|s| child_text(s, "status")),
            })
        })
        .collect()
}

/// The product in a `<product_catalog_add>` or `<product_catalog_edit>` reply.
///
/// # Errors
/// [`Error::Malformed`] without that element or its product.
pub fn parse_product_edit_reply(reply: &Node, tag: &'static str) -> Result<Product, Error> {
    let p = reply
        .child(tag)
        .and_then(|e| e.child("product"))
        .ok_or_else(|| Error::Malformed("edit reply without product"))?;
    parse_product(p)
}

/// How many products a `<product_catalog_delete deleted_count>` reply says were deleted.
///
/// # Errors
/// [`Error::Malformed`] without that element or with a non-numeric count.
pub fn parse_delete_reply(reply: &Node) -> Result<u64, Error> {
    let d = reply
        .child("product_catalog_delete")
        .ok_or_else(|| Error::Malformed("reply without product_catalog_delete"))?;
    d.attr_opt::<u64>("deleted_count")
        .map_err(|_| Error::Malformed("deleted_count is not a number"))
        .map(Option::unwrap_or_default)
}

/// An order's details.
///
/// # Errors
/// [`Error::Malformed`] without `<order>`, without a price total, or with a product
/// missing its id, name, price, currency or quantity.
pub fn parse_order_reply(reply: &Node) -> Result<OrderDetails, Error> {
    let o = reply
        .child("order")
        .ok_or_else(|| Error::Malformed("reply without order"))?;
    let products = o
        .children_by_tag("product")
        .take(MAX_PRODUCTS)
        .map(|p| {
            Ok(OrderProduct {
                id: child_text(p, "id")
                    .ok_or_else(|| Error::Malformed("order product without id"))?,
                name: child_text(p, "name")
                    .ok_or_else(|| Error::Malformed("order product without name"))?,
                image_url: p.child("image").and_then(|i| child_text(i, "url")),
                price: child_number(p, "price", "order price is not a number")?
                    .ok_or_else(|| Error::Malformed("order product without price"))?,
                currency: child_text(p, "currency")
                    .ok_or_else(|| Error::Malformed("order product without currency"))?,
                quantity: child_number(p, "quantity", "order quantity is not a number")?
                    .ok_or_else(|| Error::Malformed("order product without quantity"))?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let price = o
        .child("price")
        .ok_or_else(|| Error::Malformed("order without price"))?;
    Ok(OrderDetails {
        products,
        total: child_number(price, "total", "order total is not a number")?
            .ok_or_else(|| Error::Malformed("order without total"))?,
        currency: child_text(price, "currency")
            .ok_or_else(|| Error::Malformed("order without currency"))?,
    })
}
