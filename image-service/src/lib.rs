//! Images: references, registry pulls, the content store, layer unpacking and
//! the image store. Filled in by the image service work; empty until then.
