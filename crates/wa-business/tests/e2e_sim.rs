//! Business operations through wa-sim: a profile update read from another account,
//! product create / update / delete with catalog reads, collections, order details, and
//! the server's refusals.

use wa_binary::Jid;
use wa_business::{
    Business, BusinessHours, DayHours, Error, ProductCreate, ProductUpdate, ProfileUpdate,
};
use wa_sim::{Sim, SimConfig};

const SELLER: &str = "15550000021";
const BUYER: &str = "15550000022";

fn refused(e: &Error) -> Option<u16> {
    match e {
        Error::Refused { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_profile_catalog_and_orders_through_the_simulator() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock_s, _) = wa_testkit::link(&sim, SELLER).await;
    let (sock_b, _) = wa_testkit::link(&sim, BUYER).await;
    let seller = Business::new(sock_s);
    let buyer = Business::new(sock_b);
    let seller_jid = Jid::pn(SELLER);

    // No profile yet.
    assert_eq!(buyer.profile(&seller_jid).await.unwrap(), None);

    // The seller updates its profile; the buyer reads it.
    let mut update = ProfileUpdate::default();
    update.address = Some("1 Market Street".to_owned());
    update.email = Some("shop@example.com".to_owned());
    update.description = Some("Tea and coffee".to_owned());
    update.websites = Some(vec!["https://example.com".to_owned()]);
    update.hours = Some(BusinessHours {
        timezone: "Europe/Berlin".to_owned(),
        days: vec![
            DayHours {
                day: "mon".to_owned(),
                mode: "specific_hours".to_owned(),
                open_minutes: Some(540),
                close_minutes: Some(1080),
            },
            DayHours {
                day: "sun".to_owned(),
                mode: "appointment_only".to_owned(),
                open_minutes: None,
                close_minutes: None,
            },
        ],
    });
    seller.update_profile(&update).await.unwrap();
    let p = buyer
        .profile(&seller_jid)
        .await
        .unwrap()
        .expect("a profile");
    assert_eq!(p.jid, seller_jid);
    assert_eq!(p.address.as_deref(), Some("1 Market Street"));
    assert_eq!(p.email.as_deref(), Some("shop@example.com"));
    assert_eq!(p.description, "Tea and coffee");
    assert_eq!(p.websites, ["https://example.com"]);
    assert_eq!(p.hours, update.hours);
    // A delta leaves the other fields alone.
    let mut only_desc = ProfileUpdate::default();
    only_desc.description = Some("Tea only".to_owned());
    seller.update_profile(&only_desc).await.unwrap();
    let p = buyer.profile(&seller_jid).await.unwrap().unwrap();
    assert_eq!(
        (p.description.as_str(), p.address.as_deref()),
        ("Tea only", Some("1 Market Street"))
    );

    // Products: create two, read the catalog, page through it.
    let mut green = ProductCreate::new("Green tea", 4500, "EUR");
    green.description = "100 g".to_owned();
    green.retailer_id = Some("GT-1".to_owned());
    green.image_urls = vec!["https://mmg.whatsapp.net/p/green.jpg".to_owned()];
    green.origin_country = Some("JP".to_owned());
    let green = seller.product_create(&green).await.unwrap();
    assert_eq!(green.name, "Green tea");
    assert_eq!(green.price, Some(4500));
    assert_eq!(green.currency.as_deref(), Some("EUR"));
    assert_eq!(green.retailer_id.as_deref(), Some("GT-1"));
    assert_eq!(green.image_urls, ["https://mmg.whatsapp.net/p/green.jpg"]);
    assert!(!green.hidden);
    let black = seller
        .product_create(&ProductCreate::new("Black tea", 3900, "EUR"))
        .await
        .unwrap();
    assert_ne!(green.id, black.id);

    let all = buyer.catalog(Some(&seller_jid), 10, None).await.unwrap();
    assert_eq!(
        all.products
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["Green tea", "Black tea"]
    );
    assert_eq!(all.next_cursor, None);
    let page1 = buyer.catalog(Some(&seller_jid), 1, None).await.unwrap();
    assert_eq!(page1.products.len(), 1);
    let cursor = page1.next_cursor.expect("a second page");
    let page2 = buyer
        .catalog(Some(&seller_jid), 1, Some(&cursor))
        .await
        .unwrap();
    assert_eq!(page2.products[0].id, black.id);
    assert_eq!(page2.next_cursor, None);

    // Update: only the fields given change.
    let mut change = ProductUpdate::default();
    change.price = Some(4200);
    change.hidden = Some(true);
    let changed = seller.product_update(&green.id, &change).await.unwrap();
    assert_eq!(
        (changed.price, changed.hidden, changed.name.as_str()),
        (Some(4200), true, "Green tea")
    );
    let own = seller.catalog(None, 10, None).await.unwrap();
    let g = own.products.iter().find(|p| p.id == green.id).unwrap();
    assert_eq!((g.price, g.hidden), (Some(4200), true));

    // Collections (made in the business app; seeded here).
    let cid = sim
        .state()
        .business_add_collection(SELLER, "Teas", &[&green.id, &black.id])
        .expect("the seller has a catalog");
    let cols = buyer.collections(Some(&seller_jid), 10).await.unwrap();
    assert_eq!(cols.len(), 1);
    assert_eq!(
        (cols[0].id.as_str(), cols[0].name.as_str()),
        (cid.as_str(), "Teas")
    );
    assert_eq!(cols[0].products.len(), 2);

    // Order details (orders come from customers' order messages; seeded here).
    let (order_id, token) = sim
        .state()
        .business_add_order(SELLER, &[(&green.id, 2), (&black.id, 1)])
        .expect("known products");
    let order = seller.order_details(&order_id, &token).await.unwrap();
    assert_eq!(order.products.len(), 2);
    assert_eq!(order.products[0].name, "Green tea");
    assert_eq!(order.products[0].quantity, 2);
    assert_eq!(order.total, 2 * 4200 + 3900);
    assert_eq!(order.currency, "EUR");
    let e = seller.order_details(&order_id, "wrong").await.unwrap_err();
    assert_eq!(refused(&e), Some(401), "{e}");
    let e = seller.order_details("nope", &token).await.unwrap_err();
    assert_eq!(refused(&e), Some(404), "{e}");

    // Delete: one existing and one unknown id.
    let n = seller
        .product_delete(&[&black.id, "no-such-product"])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let left = buyer.catalog(Some(&seller_jid), 10, None).await.unwrap();
    assert_eq!(
        left.products.iter().map(|p| &p.id).collect::<Vec<_>>(),
        [&green.id]
    );
    let cols = buyer.collections(Some(&seller_jid), 10).await.unwrap();
    assert_eq!(cols[0].products.len(), 1);

    // Refusals: editing someone else's (or a missing) product, bad requests.
    let e = buyer.product_update(&green.id, &change).await.unwrap_err();
    assert_eq!(refused(&e), Some(404), "{e}");
    assert!(matches!(
        seller
            .product_create(&ProductCreate::new("", 1, "EUR"))
            .await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        seller.update_profile(&ProfileUpdate::default()).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        seller.product_delete(&[]).await,
        Err(Error::InvalidRequest(_))
    ));
    // The buyer has no catalog.
    let empty = seller
        .catalog(Some(&Jid::pn(BUYER)), 10, None)
        .await
        .unwrap();
    assert!(empty.products.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_data_survives_a_restart_from_the_state_file() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock, _) = wa_testkit::link(&sim, SELLER).await;
    let biz = Business::new(sock.clone());
    let mut u = ProfileUpdate::default();
    u.description = Some("kept".to_owned());
    biz.update_profile(&u).await.unwrap();
    let p = biz
        .product_create(&ProductCreate::new("Kept", 100, "EUR"))
        .await
        .unwrap();
    let (order, token) = sim
        .state()
        .business_add_order(SELLER, &[(&p.id, 3)])
        .unwrap();
    sock.close().await;
    let json = sim.state().to_json();
    sim.shutdown().await;

    let config = SimConfig {
        state: wa_sim::SimState::from_json(&json).unwrap(),
        ..SimConfig::default()
    };
    let sim = Sim::start(config).await.unwrap();
    let (sock, _) = wa_testkit::link(&sim, BUYER).await;
    let biz = Business::new(sock);
    let seller = Jid::pn(SELLER);
    assert_eq!(
        biz.profile(&seller).await.unwrap().unwrap().description,
        "kept"
    );
    assert_eq!(
        biz.catalog(Some(&seller), 10, None).await.unwrap().products,
        [p]
    );
    assert_eq!(biz.order_details(&order, &token).await.unwrap().total, 300);
}

/// A cover photo and a catalog image go up unencrypted through the media host; the cover
/// is set on the profile (and removed), the image becomes a product's, byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cover_photo_and_catalog_images_are_uploaded() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (sock, _) = wa_testkit::link(&sim, SELLER).await;
    let mut config = wa_media::MediaConfig::default();
    config.https = false;
    let media = wa_media::Media::new(sock.clone(), config).unwrap();
    let seller = Business::new(sock.clone());
    let jpeg = |seed: u8| -> Vec<u8> {
        (0..70_000u32)
            .map(|i| (i as u8).wrapping_mul(13) ^ seed)
            .collect()
    };

    assert_eq!(sim.business_cover_photo(SELLER), None);
    // Kinds that must be encrypted are refused (history, app state).
    for t in [wa_media::MediaType::History, wa_media::MediaType::AppState] {
        assert!(matches!(
            media.upload_raw(&b"x"[..], t, None).await,
            Err(wa_media::Error::InvalidMessage(_))
        ));
    }
    let first = seller
        .update_cover_photo(&media, &jpeg(1)[..])
        .await
        .unwrap();
    assert_eq!(sim.business_cover_photo(SELLER), Some(jpeg(1)));
    let second = seller
        .update_cover_photo(&media, &jpeg(2)[..])
        .await
        .unwrap();
    assert_ne!(first, second);
    // The server takes only an id with the signature its media host gave for it.
    let forged = wa_business::build_cover_photo_update(&first, "forged", "1").unwrap();
    assert!(matches!(
        sock.query(forged).await,
        Err(wa_socket::Error::Iq { code: 400, .. })
    ));
    assert_eq!(sim.business_cover_photo(SELLER), Some(jpeg(2)));
    // Only the current cover can be removed; then there is none.
    let e = seller.remove_cover_photo(&first).await.unwrap_err();
    assert_eq!(refused(&e), Some(404), "{e}");
    seller.remove_cover_photo(&second).await.unwrap();
    assert_eq!(sim.business_cover_photo(SELLER), None);
    assert!(matches!(
        seller.remove_cover_photo("").await,
        Err(Error::InvalidRequest(_))
    ));

    // A catalog image: its URL goes into a product and comes back in the catalog.
    let url = seller
        .upload_product_image(&media, &jpeg(3)[..])
        .await
        .unwrap();
    assert_eq!(sim.media_blob(&url), Some(jpeg(3)));
    let mut create = ProductCreate::new("Green tea", 450, "EUR");
    create.image_urls = vec![url.clone()];
    let product = seller.product_create(&create).await.unwrap();
    assert_eq!(product.image_urls, std::slice::from_ref(&url));
    let catalog = seller.catalog(None, 10, None).await.unwrap();
    assert_eq!(catalog.products[0].image_urls, [url]);
}
