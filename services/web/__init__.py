"""The explorer page's static files (plain HTML, CSS and JavaScript modules), served by services.api.page."""
