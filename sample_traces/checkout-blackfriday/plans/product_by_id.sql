SELECT correlate_demo.products.id AS products_id, correlate_demo.products.name AS products_name, correlate_demo.products.price_cents AS products_price_cents, correlate_demo.products.stock AS products_stock 
FROM correlate_demo.products 
WHERE correlate_demo.products.id = %(pk_1)s::INTEGER
