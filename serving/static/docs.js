// The API docs (Swagger UI from the swagger-ui-bundle package, served by this app: no CDN, works offline).
// validatorUrl null: Swagger UI would otherwise send the schema's address to validator.swagger.io for a badge.
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
});
