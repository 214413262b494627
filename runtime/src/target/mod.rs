//! The real targets kiln runs validators against, each a [`crate::remote::Remote`]:
//! disk images through libguestfs and hosts over SSH.

#[cfg(feature = "image-target")]
pub mod image;
pub mod ssh;
