SELECT correlate_demo.products.id, correlate_demo.products.name, correlate_demo.products.price_cents, correlate_demo.products.stock 
FROM correlate_demo.products 
WHERE correlate_demo.products.id IN (%(id_1_1)s::INTEGER)
