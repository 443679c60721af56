"""The app's own HTTP routes beside the Gradio Blocks, one module per resource: `account` (sign-in,
sign-out, password reset) and `media` (pictures for their owner and admins). `webapp.server` mounts them."""
