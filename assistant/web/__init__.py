"""The HTTP edge: FastAPI routes and middleware, the Gradio chat, rendering, feedback, admin."""
