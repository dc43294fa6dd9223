//! Making a media file ready to stream before it is uploaded: the product plan's "transmux"
//! step. The local file is never altered; what is uploaded in its place is a rewritten copy,
//! which the queue keeps in its scratch folder for the length of one attempt.

pub mod faststart;
