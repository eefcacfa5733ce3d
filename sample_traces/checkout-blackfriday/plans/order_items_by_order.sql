SELECT correlate_demo.order_items.id AS order_items_id, correlate_demo.order_items.order_id AS order_items_order_id, correlate_demo.order_items.product_id AS order_items_product_id, correlate_demo.order_items.quantity AS order_items_quantity, correlate_demo.order_items.price_cents AS order_items_price_cents 
FROM correlate_demo.order_items 
WHERE %(param_1)s::BIGINT = correlate_demo.order_items.order_id
