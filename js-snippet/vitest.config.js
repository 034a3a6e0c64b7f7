export default { test: { environment: "happy-dom", include: ["test/**/*.test.js"] } };
