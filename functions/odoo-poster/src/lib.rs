//! odoo-poster
