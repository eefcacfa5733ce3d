SELECT correlate_demo.orders.id, correlate_demo.orders.customer_id, correlate_demo.orders.status, correlate_demo.orders.total_cents, correlate_demo.orders.created_at 
FROM correlate_demo.orders ORDER BY correlate_demo.orders.id DESC 
 LIMIT %(param_1)s::INTEGER
