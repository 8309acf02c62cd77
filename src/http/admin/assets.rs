//! The admin page's script and style sheet, compiled into the binary and served from
//! `/admin/assets/`: the only script the page runs (its CSP allows no inline script), and
//! the only styles (no inline style either).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

use super::AdminError;
use crate::error::{ApiError, Missing};

const SCRIPT: &str = include_str!("admin.js");
const STYLE: &str = include_str!("admin.css");

/// GET /admin/assets/{name}: `admin.js` or `admin.css`; 404 for anything else.
pub async fn serve(name: web::Path<String>) -> Result<HttpResponse, AdminError> {
    let (body, content_type) = match name.as_str() {
        "admin.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "admin.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return Err(ApiError::NotFound(Missing::Route).into()),
    };
    let mut res = HttpResponse::Ok().content_type(content_type).body(body);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    Ok(res)
}
