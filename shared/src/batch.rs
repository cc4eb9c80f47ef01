//! SQS batch processing.
