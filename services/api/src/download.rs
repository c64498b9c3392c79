//! Sends a stored recording file. From a local directory actix-files does the HTTP work; from
//! S3 this module does the same by hand, streaming ranged reads: one `Range` (`bytes=a-b`,
//! `a-`, `-n`; 206, or 416 when unsatisfiable), the object's `ETag` with `If-None-Match` (304)
//! and `If-Range`, and an exact `Content-Length`. Either way the file is an attachment that
//! browsers neither sniff nor render.

use std::ops::Range;

use actix_files::{HttpRange, NamedFile};
use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentDisposition, EntityTag, HeaderValue};
use actix_web::mime::Mime;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use confab_storage::{Key, S3, Storage};
use futures_util::TryStreamExt;

use crate::error::ApiError;

/// What to send and how to name it.
pub struct Download {
    pub key: Key,
    pub content_type: Mime,
    pub disposition: ContentDisposition,
}

/// The file's response to `req`; 404 when storage does not hold it, 503 when S3 cannot be asked.
pub async fn respond(req: &HttpRequest, storage: &Storage, download: Download) -> Result<HttpResponse, ApiError> {
    let mut response = match storage {
        Storage::Local(dir) => from_dir(req, download, dir).await?,
        Storage::S3(s3) => from_s3(req, download, s3).await?,
    };
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(response)
}

async fn from_dir(req: &HttpRequest, download: Download, dir: &std::path::Path) -> Result<HttpResponse, ApiError> {
    let path = download.key.in_dir(dir);
    let opened = match web::block(move || NamedFile::open(path)).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => {
            tracing::warn!(file.key = download.key.as_str(), error = %e, "recording file missing from storage");
            return Err(ApiError::NotFound);
        }
        Err(e) => return Err(ApiError::Internal(anyhow::anyhow!("file open task failed: {e}"))),
    };
    let opened = opened.set_content_type(download.content_type).set_content_disposition(download.disposition);
    Ok(opened.into_response(req))
}

async fn from_s3(req: &HttpRequest, download: Download, s3: &S3) -> Result<HttpResponse, ApiError> {
    let Some(meta) = s3.head(&download.key).await.map_err(|e| ApiError::Unavailable(e.into()))? else {
        tracing::warn!(file.key = download.key.as_str(), "recording file missing from storage");
        return Err(ApiError::NotFound);
    };
    let etag = meta.e_tag.as_deref().and_then(|tag| tag.parse::<EntityTag>().ok());
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, download.content_type.to_string()))
        .insert_header((header::CONTENT_DISPOSITION, download.disposition))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header(header::LastModified(std::time::SystemTime::from(meta.last_modified).into()));
    if let Some(etag) = &etag {
        response.insert_header(header::ETag(etag.clone()));
    }
    let not_modified = match req.get_header::<header::IfNoneMatch>() {
        Some(header::IfNoneMatch::Any) => true,
        Some(header::IfNoneMatch::Items(seen)) => {
            etag.as_ref().is_some_and(|etag| seen.iter().any(|t| t.weak_eq(etag)))
        }
        None => false,
    };
    if not_modified {
        return Ok(response.status(StatusCode::NOT_MODIFIED).finish());
    }
    let range = match wanted_range(req, etag.as_ref(), meta.size) {
        Ok(Some(range)) => {
            let last = range.end - 1;
            response
                .status(StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_RANGE, format!("bytes {}-{last}/{}", range.start, meta.size)));
            range
        }
        Ok(None) => 0..meta.size,
        Err(()) => {
            let unsatisfiable = format!("bytes */{}", meta.size);
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, unsatisfiable))
                .finish());
        }
    };
    let key = download.key.clone();
    let body = s3.read(&download.key, range.clone()).inspect_err(move |e| {
        tracing::warn!(file.key = key.as_str(), error = %e, "recording download cut short by storage");
    });
    Ok(response.body(SizedStream::new(range.end - range.start, body)))
}

/// The range a `Range` header asks for: its first range, if it applies (`bytes` units, and an
/// `If-Range`, if any, naming the current ETag); `Err` when it cannot be satisfied.
fn wanted_range(req: &HttpRequest, etag: Option<&EntityTag>, size: u64) -> Result<Option<Range<u64>>, ()> {
    let Some(requested) = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let if_range_holds = match req.get_header::<header::IfRange>() {
        None => !req.headers().contains_key(header::IF_RANGE),
        Some(header::IfRange::EntityTag(tag)) => etag.is_some_and(|etag| etag.strong_eq(&tag)),
        Some(header::IfRange::Date(_)) => false,
    };
    let in_bytes = requested.split_once('=').is_some_and(|(unit, _)| unit.trim().eq_ignore_ascii_case("bytes"));
    if !if_range_holds || !in_bytes {
        return Ok(None);
    }
    match HttpRange::parse(requested, size).ok().and_then(|ranges| ranges.first().copied()) {
        Some(range) => Ok(Some(range.start..range.start + range.length)),
        None => Err(()),
    }
}
