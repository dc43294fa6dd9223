//! What the JSON APIs of Google Drive and Microsoft Graph share: an error answer is a status and
//! a JSON body, which each service reads its own way ([`JsonApi::classify`]) into one typed
//! error with `Retry-After` kept.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::cloud::CloudAccess;
use super::{BackendKind, ErrorKind, Operation, StorageError};

#[async_trait]
pub trait JsonApi: Sync {
    const SERVICE: BackendKind;

    /// The account the requests are made for.
    fn access(&self) -> &CloudAccess;

    fn error(
        &self,
        operation: Operation,
        kind: ErrorKind,
        target: &(dyn fmt::Display + Sync),
        message: impl Into<String>,
    ) -> StorageError {
        StorageError::new(Self::SERVICE, operation, kind, target, message)
    }

    /// Sends the request `build` makes, with the account's token (see [`CloudAccess::send`]).
    fn send<'a>(
        &'a self,
        operation: Operation,
        target: &'a (dyn fmt::Display + Sync),
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder + Send + Sync + 'a,
    ) -> impl std::future::Future<Output = Result<reqwest::Response, StorageError>> + Send + 'a
    {
        self.access().send(Self::SERVICE, operation, target, build)
    }

    /// What went wrong, from an error answer's status and body: the kind, and a sentence that
    /// says what to do where there is something to do.
    fn classify(status: u16, body: &serde_json::Value) -> (ErrorKind, String);

    /// An error answer as a typed error.
    async fn failure(
        &self,
        operation: Operation,
        target: &(dyn fmt::Display + Sync),
        answer: reqwest::Response,
    ) -> StorageError {
        let status = answer.status().as_u16();
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        let (kind, message) = Self::classify(status, &body);
        let mut error = StorageError::new(Self::SERVICE, operation, kind, target, message);
        error.retry_after = retry_after;
        if kind == ErrorKind::RateLimited {
            // Every worker on this account slows down, not only the one told.
            let pause = self.access().pacer().slow_down(retry_after);
            error.retry_after = Some(pause);
        }
        error
    }

    /// The JSON body of a successful answer; an error answer as a typed error.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        operation: Operation,
        target: &(dyn fmt::Display + Sync),
        answer: reqwest::Response,
    ) -> Result<T, StorageError> {
        if !answer.status().is_success() {
            return Err(self.failure(operation, target, answer).await);
        }
        answer.json().await.map_err(|error| {
            StorageError::new(
                Self::SERVICE,
                operation,
                ErrorKind::Other,
                target,
                format!(
                    "the answer cannot be read: {}",
                    super::network::chain(&error.without_url())
                ),
            )
        })
    }

    /// What became of a request that records an upload's hash with it ([`super::records`]):
    /// the upload stands either way, so a failure is logged, not returned.
    async fn settle_record(
        &self,
        target: &(dyn fmt::Display + Sync),
        sent: Result<reqwest::Response, StorageError>,
    ) {
        let failed = match sent {
            Ok(answer) if answer.status().is_success() => return,
            Ok(answer) => self.failure(Operation::Upload, target, answer).await,
            Err(error) => error,
        };
        tracing::warn!("the upload's SHA-256 is not recorded with it: {failed}");
    }

    /// A page of a feed of changes; an answer whose status is one of `expired` says the feed no
    /// longer goes back to the point asked for ([`ErrorKind::Expired`]).
    async fn feed_page<T: serde::de::DeserializeOwned>(
        &self,
        answer: reqwest::Response,
        expired: &[u16],
    ) -> Result<T, StorageError> {
        if expired.contains(&answer.status().as_u16()) {
            let mut error = self.failure(Operation::List, &"changes", answer).await;
            error.kind = ErrorKind::Expired;
            return Err(error);
        }
        self.json(Operation::List, &"changes", answer).await
    }

    /// Writes a successful answer's body into `local` (see [`super::save_download`]); an error
    /// answer as a typed error.
    async fn save_answer(
        &self,
        remote: &super::RemotePath,
        local: &std::path::Path,
        answer: reqwest::Response,
    ) -> Result<u64, StorageError> {
        use futures_util::TryStreamExt;
        if !answer.status().is_success() {
            return Err(self.failure(Operation::Download, remote, answer).await);
        }
        let body =
            tokio_util::io::StreamReader::new(answer.bytes_stream().map_err(std::io::Error::other));
        super::save_download(Self::SERVICE, remote, local, body).await
    }

    /// `DELETE url`; a resource that is already gone is not an error.
    async fn delete_at(
        &self,
        url: &str,
        target: &(dyn fmt::Display + Sync),
    ) -> Result<(), StorageError> {
        let answer = self
            .send(Operation::Delete, target, |http, token| {
                http.delete(url).bearer_auth(token)
            })
            .await?;
        match answer.status().as_u16() {
            200..=299 | 404 => Ok(()),
            _ => Err(self.failure(Operation::Delete, target, answer).await),
        }
    }
}
