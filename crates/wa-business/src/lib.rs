#![doc = include_str!("../README.md")]

mod client;
mod error;
mod parse;

pub use client::Business;
pub use error::Error;
pub use parse::{
    BusinessHours, BusinessProfile, Catalog, Collection, DayHours, MAX_COLLECTIONS, MAX_LIST,
    MAX_PRODUCTS, MAX_TEXT, OrderDetails, OrderProduct, Product, ProductCreate, ProductUpdate,
    ProfileUpdate, build_catalog_query, build_collections_query, build_cover_photo_removal,
    build_cover_photo_update, build_order_query, build_product_create, build_product_delete,
    build_product_update, build_profile_query, build_profile_update, parse_catalog_reply,
    parse_collections_reply, parse_delete_reply, parse_order_reply, parse_product,
    parse_product_edit_reply, parse_profile_reply,
};
