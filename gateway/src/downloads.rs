//! `GET /jobs/{id}/errors.csv` and `GET /jobs/{id}/download`: a job's error
//! report and the file it produced, for the caller who may see the job
//! (send the same `Authorization` header as for GraphQL).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crm_core::error::Error;
use crm_core::jobs::{self, JobStatus};
use tokio::io::AsyncReadExt;

use crate::respond::error_response;
use crate::state::AppState;

fn attachment(content_type: &str, name: &str, body: Body) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Serves a job's file.
pub async fn get(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match state.app.auth.authenticate(auth).await {
        Ok(p) => p,
        Err(e) => return error_response(&e, &headers),
    };
    if matches!(principal, crm_core::access::Principal::Anonymous) {
        return error_response(&Error::Unauthenticated, &headers);
    }
    let job = match jobs::visible(&state.app, &principal, &id, "").await {
        Ok(j) => j,
        Err(e) => return error_response(&e, &headers),
    };
    match file.as_str() {
        "errors.csv" => match jobs::error_report_csv(&state.app.db, &job.id).await {
            Ok(bytes) => attachment(
                "text/csv; charset=utf-8",
                &format!("{}-errors.csv", job.id),
                Body::from(bytes),
            ),
            Err(e) => error_response(&e, &headers),
        },
        "download" => {
            let Some(path) = job
                .result_path
                .filter(|_| job.status == JobStatus::Succeeded.as_text())
            else {
                return error_response(
                    &Error::NotFound(format!("a finished download of job {id}")),
                    &headers,
                );
            };
            let name = std::path::Path::new(&path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "export".into());
            let content_type = if name.ends_with(".jsonl") {
                "application/jsonl; charset=utf-8"
            } else {
                "text/csv; charset=utf-8"
            };
            let f = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(_) => {
                    return error_response(
                        &Error::NotFound(format!("the file of job {id} (it was deleted)")),
                        &headers,
                    );
                }
            };
            // Streamed in chunks: an export may be larger than memory.
            let stream = futures_util::stream::unfold(f, |mut f| async move {
                let mut buf = vec![0u8; 64 * 1024];
                match f.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok::<_, std::io::Error>(buf), f))
                    }
                    Err(e) => Some((Err(e), f)),
                }
            });
            attachment(content_type, &name, Body::from_stream(stream))
        }
        _ => error_response(
            &Error::NotFound(format!("file {file} of job {id}")),
            &headers,
        ),
    }
}
