//! The [`Business`] handle: business requests over a socket.

use tokio::io::AsyncRead;
use wa_binary::{Jid, Node};
use wa_media::{DEFAULT_MEDIA_HOST, Media, MediaType};
use wa_socket::Socket;

use crate::Error;
use crate::parse::{
    BusinessProfile, Catalog, Collection, OrderDetails, Product, ProductCreate, ProductUpdate,
    ProfileUpdate, build_catalog_query, build_collections_query, build_cover_photo_removal,
    build_cover_photo_update, build_order_query, build_product_create, build_product_delete,
    build_product_update, build_profile_query, build_profile_update, parse_catalog_reply,
    parse_collections_reply, parse_delete_reply, parse_order_reply, parse_product_edit_reply,
    parse_profile_reply,
};

/// Business profile, catalog and order operations over a [`Socket`]. Cheap to clone.
#[derive(Clone)]
pub struct Business {
    socket: Socket,
}

impl std::fmt::Debug for Business {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Business").finish_non_exhaustive()
    }
}

impl Business {
    /// Wraps `socket`.
    pub fn new(socket: Socket) -> Self {
        Self { socket }
    }

    async fn query(&self, node: Node) -> Result<Node, Error> {
        Ok(self.socket.query(node).await?)
    }

    /// Our own account (without device), for requests that default to it.
    async fn me(&self) -> Result<Jid, Error> {
        self.socket
            .me()
            .await
            .map(|j| j.to_non_ad())
            .ok_or_else(|| Error::InvalidRequest("not logged in"))
    }

    /// Uploads `photo` (a JPEG) unencrypted through `media` and makes it our business
    /// profile's cover photo; returns its id (for [`Business::remove_cover_photo`]).
    ///
    /// # Errors
    /// [`Error::Media`] when the upload fails; [`Error::Malformed`] when the host did not
    /// return the photo's id and signature; server and socket errors.
    pub async fn update_cover_photo(
        &self,
        media: &Media,
        photo: impl AsyncRead + Unpin,
    ) -> Result<String, Error> {
        let up = media
            .upload_raw(photo, MediaType::BizCoverPhoto, None)
            .await?;
        let handle = up
            .handle
            .ok_or_else(|| Error::Malformed("cover photo upload without an id and signature"))?;
        self.query(build_cover_photo_update(
            &handle.fbid,
            &handle.meta_hmac,
            &handle.ts,
        )?)
        .await?;
        Ok(handle.fbid)
    }

    /// Removes our cover photo `id`.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty id; server (e.g. 404 not the current cover)
    /// and socket errors.
    pub async fn remove_cover_photo(&self, id: &str) -> Result<(), Error> {
        self.query(build_cover_photo_removal(id)?).await.map(drop)
    }

    /// Uploads `image` (a JPEG) unencrypted through `media` as a catalog image and returns
    /// the URL to put in [`ProductCreate::image_urls`] or [`ProductUpdate::image_urls`].
    ///
    /// # Errors
    /// [`Error::Media`] when the upload fails; [`Error::Malformed`] when the host returned
    /// no location.
    pub async fn upload_product_image(
        &self,
        media: &Media,
        image: impl AsyncRead + Unpin,
    ) -> Result<String, Error> {
        let up = media
            .upload_raw(image, MediaType::ProductCatalogImage, None)
            .await?;
        match (up.url.is_empty(), up.direct_path.is_empty()) {
            (false, _) => Ok(up.url),
            (true, false) => Ok(format!("https://{DEFAULT_MEDIA_HOST}{}", up.direct_path)),
            (true, true) => Err(Error::Malformed("catalog image upload without a location")),
        }
    }

    /// `jid`'s business profile; `None` when it has none.
    ///
    /// # Errors
    /// Server and socket errors; [`Error::Malformed`].
    pub async fn profile(&self, jid: &Jid) -> Result<Option<BusinessProfile>, Error> {
        let reply = self.query(build_profile_query(&jid.to_non_ad())).await?;
        parse_profile_reply(&reply)
    }

    /// Changes our business profile (only the fields set in `update`).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`]; server and socket errors.
    pub async fn update_profile(&self, update: &ProfileUpdate) -> Result<(), Error> {
        self.query(build_profile_update(update)?).await.map(drop)
    }

    /// One page of `jid`'s catalog (ours when `None`): up to `limit` products after
    /// `cursor`.
    ///
    /// # Errors
    /// Server and socket errors; [`Error::Malformed`].
    pub async fn catalog(
        &self,
        jid: Option<&Jid>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Catalog, Error> {
        let jid = match jid {
            Some(j) => j.to_non_ad(),
            None => self.me().await?,
        };
        let reply = self.query(build_catalog_query(&jid, limit, cursor)).await?;
        parse_catalog_reply(&reply)
    }

    /// `jid`'s collections (ours when `None`), up to `limit`.
    ///
    /// # Errors
    /// Server and socket errors; [`Error::Malformed`].
    pub async fn collections(
        &self,
        jid: Option<&Jid>,
        limit: u32,
    ) -> Result<Vec<Collection>, Error> {
        let jid = match jid {
            Some(j) => j.to_non_ad(),
            None => self.me().await?,
        };
        let reply = self.query(build_collections_query(&jid, limit)).await?;
        parse_collections_reply(&reply)
    }

    /// Adds a product to our catalog; returns it as stored (with its id).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`]; server and socket errors; [`Error::Malformed`].
    pub async fn product_create(&self, product: &ProductCreate) -> Result<Product, Error> {
        let reply = self.query(build_product_create(product)?).await?;
        parse_product_edit_reply(&reply, "product_catalog_add")
    }

    /// Changes a product of our catalog; returns it as stored.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`]; server (404 no such product) and socket errors;
    /// [`Error::Malformed`].
    pub async fn product_update(&self, id: &str, update: &ProductUpdate) -> Result<Product, Error> {
        let reply = self.query(build_product_update(id, update)?).await?;
        parse_product_edit_reply(&reply, "product_catalog_edit")
    }

    /// Deletes products of our catalog; returns how many were deleted.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`]; server and socket errors; [`Error::Malformed`].
    pub async fn product_delete(&self, ids: &[&str]) -> Result<u64, Error> {
        let reply = self.query(build_product_delete(ids)?).await?;
        parse_delete_reply(&reply)
    }

    /// An order's details; `token` is the one the order message carries.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] for an empty id or token; server (404 no such order,
    /// 401 wrong token) and socket errors; [`Error::Malformed`].
    pub async fn order_details(&self, order_id: &str, token: &str) -> Result<OrderDetails, Error> {
        if order_id.is_empty() || token.is_empty() {
            return Err(Error::InvalidRequest("empty order id or token"));
        }
        let reply = self.query(build_order_query(order_id, token)).await?;
        parse_order_reply(&reply)
    }
}
