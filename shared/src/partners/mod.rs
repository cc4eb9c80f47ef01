//! Partner formats: one adapter per format, turning partner bodies into canonical events.
